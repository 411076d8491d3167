/**
 * The default TransactionalProducer: @confluentinc/kafka-javascript's lower-level (librdkafka)
 * API, which takes a timeout for every transactional call and keeps librdkafka's error flags.
 * (Its KafkaJS-style API hard-codes 5 s timeouts and loses the flags.)
 */
import type {
  OutgoingRecord,
  ProducerFactory,
  RecordMetadata,
  TopicPartitionOffset,
  TransactionalProducer,
} from '../pool/producer-port.js';
import { KafkaClientError } from '../pool/producer-port.js';
import { ConfigurationError } from '../errors.js';
import { toKafkaClientError } from './confluent-errors.js';
import { Kafka } from './native.js';
import { assertThreadPoolFits } from './thread-pool.js';

/** librdkafka producer properties; 'bootstrap.servers' is required, TLS/SASL settings pass through. */
export type KafkaClientConfig = { 'bootstrap.servers': string } & Record<string, string | number | boolean>;

/**
 * Properties the pool depends on; a user's config cannot turn them off. Idempotence and acks=all
 * are implied by transactional.id, but saying so makes a conflicting setting fail at init.
 */
const REQUIRED = { 'enable.idempotence': true, acks: 'all', dr_cb: true } as const;

/**
 * Defaults a user may override. linger.ms is low because every transaction waits for its
 * deliveries before it commits; batching across requests is done above the client (group commit).
 * transaction.timeout.ms is Kafka Streams' exactly-once default rather than the client's 60 s:
 * a process that dies with a transaction open holds the last stable offset of every partition it
 * wrote (stalling read_committed readers), and any idempotency key it claimed, until the
 * coordinator aborts that transaction. Ours last well under a second; one that outlives 10 s is
 * aborted by the coordinator and reported as an unknown outcome, never lost silently.
 */
const DEFAULTS = { 'linger.ms': 1, 'socket.keepalive.enable': true, 'transaction.timeout.ms': 10_000 } as const;

interface Deferred {
  resolve(meta: RecordMetadata): void;
  reject(error: unknown): void;
}

interface DeliveryReport {
  topic: string;
  partition: number;
  offset: number;
  opaque?: Deferred;
}

// The native client is untyped here on purpose: its d.ts describes the KafkaJS-style API first.
type NativeProducer = any;

export class ConfluentTransactionalProducer implements TransactionalProducer {
  readonly transactionalId: string;
  private readonly native: NativeProducer;
  private connected = false;

  constructor(transactionalId: string, config: KafkaClientConfig) {
    this.transactionalId = transactionalId;
    this.native = new Kafka.Producer({
      'client.id': `txgate-${transactionalId}`,
      ...DEFAULTS,
      ...config,
      ...REQUIRED,
      'transactional.id': transactionalId,
    });
    this.native.on('delivery-report', (err: unknown, report: DeliveryReport) => {
      const deferred = report?.opaque;
      if (!deferred) return;
      if (err) deferred.reject(toKafkaClientError(err, `delivery to ${report.topic}`));
      else deferred.resolve({ topic: report.topic, partition: report.partition, offset: String(report.offset) });
    });
    // Errors also surface on the calls that hit them; without a listener they would be lost silently.
    this.native.on('event.error', () => {});
  }

  async init(timeoutMs: number): Promise<void> {
    await this.call('connect', (cb) => this.native.connect({ timeout: timeoutMs }, cb));
    this.connected = true;
    // Delivery reports are served by librdkafka's own thread, not by a timer on the event loop.
    this.native.setPollInBackground(true);
    await this.call('initTransactions', (cb) => this.native.initTransactions(timeoutMs, cb));
  }

  begin(): Promise<void> {
    return this.call('beginTransaction', (cb) => this.native.beginTransaction(cb));
  }

  send(record: OutgoingRecord): Promise<RecordMetadata> {
    return new Promise<RecordMetadata>((resolve, reject) => {
      const headers = record.headers
        ? Object.entries(record.headers).map(([name, value]) => ({ [name]: value }))
        : undefined;
      try {
        this.native.produce(
          record.topic,
          record.partition ?? -1,
          record.value,
          record.key ?? null,
          record.timestamp ?? null,
          { resolve, reject } satisfies Deferred,
          headers,
        );
      } catch (error) {
        reject(toKafkaClientError(error, `produce to ${record.topic}`));
      }
    });
  }

  sendOffsets(offsets: TopicPartitionOffset[], consumer: unknown, timeoutMs: number): Promise<void> {
    const list = offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: Number(o.offset) }));
    return this.call('sendOffsetsToTransaction', (cb) =>
      this.native.sendOffsetsToTransaction(list, consumer, timeoutMs, cb),
    );
  }

  commit(timeoutMs: number): Promise<void> {
    return this.call('commitTransaction', (cb) => this.native.commitTransaction(timeoutMs, cb));
  }

  abort(timeoutMs: number): Promise<void> {
    return this.call('abortTransaction', (cb) => this.native.abortTransaction(timeoutMs, cb));
  }

  async close(timeoutMs: number): Promise<void> {
    if (!this.connected) return;
    this.connected = false;
    // disconnect() flushes first; a fenced or broken producer may never finish that, so the
    // wait is bounded and the native handle is dropped either way.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs + 1000);
      try {
        this.native.disconnect(timeoutMs, () => {
          clearTimeout(timer);
          resolve();
        });
      } catch {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  private call(name: string, start: (cb: (err: unknown) => void) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      try {
        start((err) => (err ? reject(toKafkaClientError(err, name)) : resolve()));
      } catch (error) {
        reject(toKafkaClientError(error, name));
      }
    });
  }
}

/**
 * Creates producers for a pool. It counts the producers alive at once and refuses to create one
 * that the libuv thread pool could not serve (see thread-pool.ts): better a loud error at start
 * than commits that silently queue behind each other.
 */
export function createConfluentProducerFactory(config: KafkaClientConfig): ProducerFactory {
  if (!config['bootstrap.servers']) throw new ConfigurationError("the Kafka client config needs 'bootstrap.servers'");
  const alive = new Set<string>();
  return (transactionalId) => {
    alive.add(transactionalId);
    assertThreadPoolFits(alive.size);
    return new ConfluentTransactionalProducer(transactionalId, config);
  };
}

export { KafkaClientError };
