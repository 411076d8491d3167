/**
 * A local 3-node KRaft cluster (every node broker + controller; replication factor 3,
 * min.insync.replicas 2) on 127.0.0.1, driven through scripts/kafka-local.sh. Node n (1..3)
 * listens on basePort + 2(n-1), its controller on the port after it.
 */
import { baseEnv, KafkaLauncherError, runLauncher, type LauncherOptions } from './launcher.js';
import { LOCAL_HOST } from './single-node.js';

export const DEFAULT_CLUSTER_BASE_PORT = 29092;
export const CLUSTER_SIZE = 3;

export interface LocalKafkaClusterOptions extends LauncherOptions {
  /** KAFKA_CLUSTER_BASE_PORT: the cluster uses 6 ports from here. */
  basePort?: number | undefined;
}

export type ClusterNode = 1 | 2 | 3;

export class LocalKafkaCluster {
  constructor(private readonly opts: LocalKafkaClusterOptions = {}) {}

  private env(): Record<string, string | undefined> {
    const env = baseEnv(this.opts);
    if (this.opts.basePort !== undefined) env.KAFKA_CLUSTER_BASE_PORT = String(this.opts.basePort);
    return env;
  }

  private run(command: string, ...args: string[]): Promise<string> {
    return runLauncher(command, args, this.env());
  }

  get basePort(): number {
    return (
      this.opts.basePort ??
      (Number(this.opts.env?.KAFKA_CLUSTER_BASE_PORT ?? process.env.KAFKA_CLUSTER_BASE_PORT) || DEFAULT_CLUSTER_BASE_PORT)
    );
  }

  nodePort(node: ClusterNode): number {
    return this.basePort + (node - 1) * 2;
  }

  nodeBootstrap(node: ClusterNode): string {
    return `${LOCAL_HOST}:${this.nodePort(node)}`;
  }

  get bootstrap(): string {
    return ([1, 2, 3] as const).map((n) => this.nodeBootstrap(n)).join(',');
  }

  /** Formats and starts all three nodes; resolves with the bootstrap list once every node serves. */
  async start(): Promise<string> {
    await this.run('cluster-start');
    return this.bootstrap;
  }

  /** Stops every node and deletes the cluster's data. */
  async stop(opts: { keepData?: boolean } = {}): Promise<void> {
    await runLauncher('cluster-stop', [], { ...this.env(), ...(opts.keepData ? { KAFKA_KEEP_DATA: '1' } : {}) });
  }

  /** Kills one node, keeping its data: SIGKILL (a crash) by default, SIGTERM with graceful. */
  async killNode(node: ClusterNode, opts: { graceful?: boolean } = {}): Promise<void> {
    await this.run('node-kill', String(node), ...(opts.graceful ? ['--term'] : []));
  }

  /** Starts a killed node again on its existing data; resolves once it serves. */
  async startNode(node: ClusterNode): Promise<void> {
    await this.run('node-start', String(node));
  }

  /** Which nodes are running, by the script's pid check. */
  async runningNodes(): Promise<ClusterNode[]> {
    let out: string;
    try {
      out = await this.run('cluster-status');
    } catch (err) {
      // cluster-status exits 1 when any node is down but still lists them all
      if (!(err instanceof KafkaLauncherError)) throw err;
      out = err.stdout;
    }
    return out
      .split('\n')
      .map((l) => /^node([1-3]) running/.exec(l)?.[1])
      .filter((n): n is string => n !== undefined)
      .map((n) => Number(n) as ClusterNode);
  }
}
