/**
 * The OpenTelemetry SDK of a gateway process. It is set up only when tracing is configured; an
 * unconfigured gateway neither loads nor registers any of it, and the spans the code makes
 * through @opentelemetry/api stay no-ops.
 *
 * Configured by --otlp-endpoint or by OpenTelemetry's standard environment variables:
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT (any of the three turns OTLP
 * export on), OTEL_TRACES_EXPORTER (otlp, console, none), OTEL_SDK_DISABLED, OTEL_TRACES_SAMPLER
 * and OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*, OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the
 * exporter itself reads OTEL_EXPORTER_OTLP_*_HEADERS, _TIMEOUT, _COMPRESSION and the TLS files.
 * The 3.x SDK reads no environment variable of its own, hence the parsing here.
 */
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import { ConfigurationError } from '../errors.js';
import { DEFAULT_TRACING_SERVICE_NAME } from './defaults.js';

export interface TracingSettings {
  /** --otlp-endpoint: the collector's OTLP/HTTP traces URL. */
  otlpEndpoint?: string | undefined;
}

type Env = Record<string, string | undefined>;

export type ExporterPlan = { kind: 'otlp'; url: string } | { kind: 'console' };

export type SamplerName = 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';
const SAMPLERS: readonly SamplerName[] = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'];

export interface TracingPlan {
  exporters: ExporterPlan[];
  sampler: { name: SamplerName; ratio: number };
  /** The batch span processor's settings (OTEL_BSP_*); unset: the SDK's defaults. */
  batch: { scheduledDelayMillis?: number; exportTimeoutMillis?: number; maxQueueSize?: number; maxExportBatchSize?: number };
}

const OTLP_TRACES_PATH = 'v1/traces';
const DEFAULT_OTLP_TRACES_URL = `http://localhost:4318/${OTLP_TRACES_PATH}`;

/**
 * The --otlp-endpoint value as the URL spans are posted to: a bare address (no path) gets the
 * OTLP traces path, so both "http://collector:4318" and "http://collector:4318/v1/traces" work.
 */
export function otlpTracesUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new ConfigurationError(`--otlp-endpoint / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "${value}" is not a URL (e.g. http://collector:4318/v1/traces)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigurationError(`--otlp-endpoint / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "${value}" must be an http:// or https:// URL (OTLP over HTTP)`);
  }
  if (url.pathname === '/') url.pathname = `/${OTLP_TRACES_PATH}`;
  return url.href;
}

/** What tracing the settings and environment ask for; undefined: none (nothing is set up). */
export function tracingPlan(settings: TracingSettings, env: Env = process.env): TracingPlan | undefined {
  if (['true', '1'].includes(env.OTEL_SDK_DISABLED?.trim().toLowerCase() ?? '')) return undefined;
  const exporters = planExporters(settings, env);
  if (exporters.length === 0) return undefined;
  return { exporters, sampler: planSampler(env), batch: planBatch(env) };
}

function planExporters(settings: TracingSettings, env: Env): ExporterPlan[] {
  const listed = env.OTEL_TRACES_EXPORTER?.split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
  for (const name of listed ?? []) {
    if (!['otlp', 'console', 'none'].includes(name)) {
      throw new ConfigurationError(`OTEL_TRACES_EXPORTER: txgate exports spans with otlp (OTLP over HTTP), console or none, not "${name}"`);
    }
  }
  const flag = settings.otlpEndpoint?.trim() ? otlpTracesUrl(settings.otlpEndpoint) : undefined;
  const fromEnv = envTracesUrl(env);
  // The flag is an explicit request for OTLP, whatever the environment says; an endpoint in the
  // environment alone means OTLP too, unless OTEL_TRACES_EXPORTER says otherwise.
  let kinds: string[];
  if (flag) kinds = ['otlp', ...(listed ?? []).filter((k) => k === 'console')];
  else if (listed) kinds = listed.includes('none') ? [] : listed;
  else kinds = fromEnv ? ['otlp'] : [];
  return [...new Set(kinds)].map((kind): ExporterPlan => (kind === 'otlp' ? { kind, url: flag ?? fromEnv ?? DEFAULT_OTLP_TRACES_URL } : { kind: 'console' }));
}

/** The traces URL the environment names, resolved the way the OTLP exporter resolves it. */
function envTracesUrl(env: Env): string | undefined {
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (specific) return otlpTracesUrl(specific);
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!base) return undefined;
  try {
    return new URL(OTLP_TRACES_PATH, base.endsWith('/') ? base : `${base}/`).href;
  } catch {
    throw new ConfigurationError(`OTEL_EXPORTER_OTLP_ENDPOINT "${base}" is not a URL (e.g. http://collector:4318)`);
  }
}

function planSampler(env: Env): TracingPlan['sampler'] {
  const raw = env.OTEL_TRACES_SAMPLER?.trim().toLowerCase() || 'parentbased_always_on';
  if (!SAMPLERS.includes(raw as SamplerName)) {
    throw new ConfigurationError(`OTEL_TRACES_SAMPLER: expected one of ${SAMPLERS.join(', ')}, got "${env.OTEL_TRACES_SAMPLER}"`);
  }
  const name = raw as SamplerName;
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  const ratio = name.endsWith('traceidratio') && arg ? Number(arg) : 1;
  if (!(ratio >= 0 && ratio <= 1)) throw new ConfigurationError(`OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1, got "${arg}"`);
  return { name, ratio };
}

function planBatch(env: Env): TracingPlan['batch'] {
  const batch: TracingPlan['batch'] = {};
  const read = (name: string, key: keyof TracingPlan['batch'], min: number) => {
    const raw = env[name]?.trim();
    if (!raw) return;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new ConfigurationError(`${name}: expected an integer of at least ${min}, got "${raw}"`);
    batch[key] = n;
  };
  read('OTEL_BSP_SCHEDULE_DELAY', 'scheduledDelayMillis', 0);
  read('OTEL_BSP_EXPORT_TIMEOUT', 'exportTimeoutMillis', 0);
  read('OTEL_BSP_MAX_QUEUE_SIZE', 'maxQueueSize', 1);
  read('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 'maxExportBatchSize', 1);
  return batch;
}

export interface StartTracingOptions {
  env?: Env;
  /**
   * Spans also go to this exporter, one by one as they end (SimpleSpanProcessor), and tracing is
   * on even when nothing else configures it: tests use an InMemorySpanExporter.
   */
  exporter?: SpanExporter;
  serviceVersion?: string;
  /** The gateway's --instance-id, as service.instance.id. */
  instanceId?: string;
  /**
   * Links one span may hold: a transaction span links every member of its batch, so the gateway
   * passes --max-batch-requests (the SDK's default, 128, would drop the rest).
   */
  maxLinksPerSpan?: number;
  /** Where the SDK's own complaints go (an unreachable collector, a dropped span). */
  logger?: { warn(obj: object, msg: string): void };
}

/** A registered SDK. */
export interface Tracing {
  /** Where spans go, for the start-up log. */
  readonly description: string;
  /** Exports what is still buffered (within timeoutMs), then unregisters the SDK. */
  shutdown(timeoutMs?: number): Promise<void>;
}

/**
 * Registers an SDK when tracing is configured (or an exporter is given), as this process's global
 * tracer provider and context manager; resolves undefined when tracing is off, or when something
 * else in the process registered a tracer provider first (its spans then go there).
 */
export async function startTracing(settings: TracingSettings, opts: StartTracingOptions = {}): Promise<Tracing | undefined> {
  const env = opts.env ?? process.env;
  const plan = tracingPlan(settings, env) ?? (opts.exporter ? { exporters: [], sampler: planSampler(env), batch: planBatch(env) } : undefined);
  if (!plan) return undefined;

  const [api, sdk, { AsyncLocalStorageContextManager }, resources, semconv] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
  ]);

  const processors = [];
  for (const e of plan.exporters) {
    if (e.kind === 'otlp') {
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      processors.push(new sdk.BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: e.url }), ...plan.batch }));
    } else {
      processors.push(new sdk.BatchSpanProcessor({ exporter: new sdk.ConsoleSpanExporter(), ...plan.batch }));
    }
  }
  if (opts.exporter) processors.push(new sdk.SimpleSpanProcessor({ exporter: opts.exporter }));

  const { name, ratio } = plan.sampler;
  const root = name.endsWith('always_off') ? new sdk.AlwaysOffSampler() : name.endsWith('traceidratio') ? new sdk.TraceIdRatioBasedSampler(ratio) : new sdk.AlwaysOnSampler();
  const sampler = name.startsWith('parentbased_') ? new sdk.ParentBasedSampler({ root }) : root;

  const own: Record<string, string> = { [semconv.ATTR_SERVICE_NAME]: DEFAULT_TRACING_SERVICE_NAME };
  if (opts.serviceVersion) own[semconv.ATTR_SERVICE_VERSION] = opts.serviceVersion;
  if (opts.instanceId) own[semconv.ATTR_SERVICE_INSTANCE_ID] = opts.instanceId;
  // The environment's attributes (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME) win over ours.
  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes(own))
    .merge(resources.detectResources({ detectors: [resources.resourceAttributesEnvDetector, resources.serviceNameEnvDetector] }));

  const spanLimits = opts.maxLinksPerSpan !== undefined ? { linkCountLimit: Math.max(128, opts.maxLinksPerSpan) } : {};
  const provider = new sdk.TracerProvider({ resource, sampler, spanProcessors: processors, spanLimits });
  const logger = opts.logger;
  const complain = (message: string, ...args: unknown[]) => logger?.warn({ detail: args.map(String).join(' ') }, `OpenTelemetry: ${message}`);
  const ownDiag = logger ? api.diag.setLogger({ error: complain, warn: complain, info: () => {}, debug: () => {}, verbose: () => {} }, api.DiagLogLevel.WARN) : false;
  if (!api.trace.setGlobalTracerProvider(provider)) {
    logger?.warn({}, 'an OpenTelemetry tracer provider is already registered in this process: txgate\'s spans go to it, not to the configured exporter');
    if (ownDiag) api.diag.disable();
    await provider.shutdown();
    return undefined;
  }
  // Group commit and the pool find their parent span in the active context, across awaits.
  const contextManager = new AsyncLocalStorageContextManager().enable();
  const ownContext = api.context.setGlobalContextManager(contextManager);
  if (!ownContext) contextManager.disable();

  const description = [
    ...plan.exporters.map((e) => (e.kind === 'otlp' ? `otlp ${e.url}` : 'console')),
    ...(opts.exporter ? ['a given exporter'] : []),
  ].join(', ');
  let stopped: Promise<void> | undefined;
  return {
    description,
    shutdown(timeoutMs = 5_000) {
      stopped ??= (async () => {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
        try {
          const flushed = await Promise.race([provider.shutdown().then(() => 'done' as const), timedOut]);
          if (flushed === 'timeout') logger?.warn({ timeoutMs }, 'OpenTelemetry: spans not exported in time at shutdown were dropped');
        } catch (err) {
          logger?.warn({ err }, 'OpenTelemetry: exporting the last spans failed');
        } finally {
          clearTimeout(timer);
          api.trace.disable();
          if (ownContext) api.context.disable();
          if (ownDiag) api.diag.disable();
        }
      })();
      return stopped;
    },
  };
}
