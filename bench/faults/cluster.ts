/**
 * The local 3-node cluster (RF 3, min ISR 2) as the fault scenarios need it: kill -9 and restart
 * a node, freeze all of them (SIGSTOP/SIGCONT), topics whose partitions are led by chosen
 * brokers, and where the transaction coordinator of a transactional id lives.
 *
 * The coordinator of a transactional id is the leader of partition
 * abs(javaHashCode(id)) % transaction.state.log.num.partitions of __transaction_state
 * (Kafka's TransactionStateManager.partitionFor). A gateway's ids differ only in their last
 * character (<prefix>-<instance>-<slot>), so their hashes are consecutive integers and a pool
 * always spreads over every coordinator partition: with the launcher's 3 partitions, every
 * broker coordinates some of them. To give "the broker hosting our coordinator" a meaning, this
 * cluster has ONE __transaction_state partition (still RF 3, min ISR 2): its leader coordinates
 * every transactional id, the harshest case for a coordinator failure. Kafka's own
 * TransactionsCommand (`transactions list`) confirms it in each scenario.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { RdKafka } from '@confluentinc/kafka-javascript';
import { LocalKafkaCluster, type ClusterNode } from '../../src/local-kafka/cluster.js';
import { runLauncher } from '../../src/local-kafka/launcher.js';
import { listTransactions, type TransactionListing } from '../../src/verify/transactions.js';

export const NODES: readonly ClusterNode[] = [1, 2, 3];
export const TRANSACTION_STATE_TOPIC = '__transaction_state';
/** transaction.state.log.num.partitions of this cluster (scripts/kafka-local.sh's default is 3; see above). */
export const TRANSACTION_STATE_PARTITIONS = 1;

export interface PartitionState {
  topic: string;
  partition: number;
  /** -1 without a leader. */
  leader: number;
  replicas: number[];
  isr: number[];
}

/** Java's String.hashCode (UTF-16 code units, 32-bit overflow). */
export function javaStringHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(31, h) + s.charCodeAt(i)) | 0;
  return h;
}

/** The __transaction_state partition that coordinates a transactional id (Utils.abs(hashCode) % n). */
export function transactionStatePartition(transactionalId: string, partitions = TRANSACTION_STATE_PARTITIONS): number {
  const h = javaStringHash(transactionalId);
  return (h === -2147483648 ? 0 : Math.abs(h)) % partitions;
}

/** The gateway's transactional ids: <prefix>-<instance>-<slot> (src/pool/pool.ts). */
export function pooledTransactionalIds(instanceId: string, poolSize: number, prefix = 'txgate'): string[] {
  return Array.from({ length: poolSize }, (_, slot) => `${prefix}-${instanceId}-${slot}`);
}

export class FaultCluster {
  readonly cluster: LocalKafkaCluster;
  bootstrap = '';
  private readonly frozen = new Set<number>();

  constructor(
    readonly stateDir: string,
    readonly basePort: number,
  ) {
    this.cluster = new LocalKafkaCluster({
      basePort,
      stateDir,
      // appended to server.properties: the later value of a key wins
      env: { KAFKA_EXTRA_PROPS: `transaction.state.log.num.partitions=${TRANSACTION_STATE_PARTITIONS}` },
    });
  }

  private get toolEnv(): Record<string, string> {
    return { KAFKA_BOOTSTRAP: this.bootstrap, KAFKA_LOCAL_STATE: this.stateDir };
  }

  async start(): Promise<string> {
    this.bootstrap = await this.cluster.start();
    await this.ensureTransactionStateTopic();
    return this.bootstrap;
  }

  /** Never throws: cleanup. Thaws frozen nodes first (a stopped JVM cannot act on SIGTERM). */
  async stop(): Promise<void> {
    this.thawAll();
    await this.cluster.stop().catch(() => {});
  }

  nodeDir(node: ClusterNode): string {
    return path.join(this.stateDir, 'cluster', `node${node}`);
  }

  /** The node's JVM pid, checked against /proc (a recycled pid is never signalled). */
  nodePid(node: ClusterNode): number | undefined {
    try {
      const pid = Number(readFileSync(path.join(this.nodeDir(node), 'pid'), 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0) return undefined;
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      return cmdline.includes(path.join(this.nodeDir(node), 'server.properties')) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** kill -9 of one node (its data stays). */
  async kill(node: ClusterNode): Promise<void> {
    await this.cluster.killNode(node);
  }

  /** Starts a killed node on its data; resolves once it serves. */
  async restart(node: ClusterNode): Promise<void> {
    await this.cluster.startNode(node);
  }

  /** SIGSTOP every running node: the cluster stops answering, connections stay open. */
  freezeAll(): number[] {
    const pids: number[] = [];
    for (const node of NODES) {
      const pid = this.nodePid(node);
      if (pid === undefined) continue;
      process.kill(pid, 'SIGSTOP');
      this.frozen.add(pid);
      pids.push(pid);
    }
    return pids;
  }

  thawAll(): void {
    for (const pid of this.frozen) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    this.frozen.clear();
  }

  /** Starts any node that is down (a scenario that failed half-way) and thaws frozen ones. */
  async ensureAllRunning(): Promise<ClusterNode[]> {
    this.thawAll();
    const running = new Set(await this.cluster.runningNodes());
    const started: ClusterNode[] = [];
    for (const node of NODES) {
      if (running.has(node)) continue;
      await this.cluster.startNode(node);
      started.push(node);
    }
    return started;
  }

  /** Leader, replicas and ISR of every partition of the topics. */
  async describe(topics: string[], timeoutMs = 5_000): Promise<PartitionState[]> {
    const admin = RdKafka.AdminClient.create({ 'bootstrap.servers': this.bootstrap, 'client.id': 'txgate-faults' });
    try {
      const described = await new Promise<RdKafka.TopicDescription[]>((resolve, reject) =>
        admin.describeTopics(topics, { timeout: timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
      );
      const out: PartitionState[] = [];
      for (const t of described) {
        if (t.error) throw new Error(`cannot describe ${t.name}: ${t.error.message}`);
        for (const p of t.partitions) {
          out.push({
            topic: t.name,
            partition: p.partition,
            leader: p.leader?.id ?? -1,
            replicas: p.replicas.map((r) => r.id),
            isr: p.isr.map((r) => r.id),
          });
        }
      }
      return out;
    } finally {
      admin.disconnect();
    }
  }

  /** Every partition of the topics has a leader and all 3 replicas in sync (false while unknown). */
  async inSync(topics: string[]): Promise<boolean> {
    try {
      const parts = await this.describe(topics);
      return parts.length > 0 && parts.every((p) => p.leader > 0 && p.isr.length === p.replicas.length);
    } catch {
      return false;
    }
  }

  /** The leader of partition `partition` of `topic` (-1: none or unknown). */
  async leaderOf(topic: string, partition: number): Promise<number> {
    try {
      return (await this.describe([topic])).find((p) => p.partition === partition)?.leader ?? -1;
    } catch {
      return -1;
    }
  }

  /**
   * Creates a topic (RF 3). `leaders`: the preferred (first) replica of each partition, which
   * leads it on creation; without it, the controller spreads leaders. Waits until each partition
   * has its leader.
   */
  async createTopic(topic: string, opts: { partitions: number; leaders?: ClusterNode[]; config?: Record<string, string> }): Promise<void> {
    const args = ['--create', '--topic', topic];
    if (opts.leaders) {
      if (opts.leaders.length !== opts.partitions) throw new Error('one leader per partition');
      const assignment = opts.leaders.map((leader, i) => {
        const others = NODES.filter((n) => n !== leader);
        return [leader, ...(i % 2 === 0 ? others : [...others].reverse())].join(':');
      });
      args.push('--replica-assignment', assignment.join(','));
    } else {
      args.push('--partitions', String(opts.partitions), '--replication-factor', '3');
    }
    for (const [k, v] of Object.entries(opts.config ?? {})) args.push('--config', `${k}=${v}`);
    await runLauncher('topics', args, this.toolEnv);
    await this.waitFor(
      async () => {
        const parts = await this.describe([topic]).catch(() => []);
        if (parts.length !== opts.partitions) return false;
        return parts.every((p) => p.leader > 0 && (!opts.leaders || p.leader === opts.leaders[p.partition]));
      },
      60_000,
      `the partitions of ${topic} to get their leaders`,
    );
  }

  /** Deletes a topic (Kafka's TopicCommand). */
  async deleteTopic(topic: string): Promise<void> {
    await runLauncher('topics', ['--delete', '--topic', topic], this.toolEnv);
  }

  /** Every transactional id with the prefix, with its coordinator and state (Kafka's TransactionsCommand list). */
  async transactions(prefix: string): Promise<TransactionListing[]> {
    return (await listTransactions(this.bootstrap)).filter((t) => t.transactionalId.startsWith(prefix));
  }

  /** The leader of each __transaction_state partition. */
  async coordinatorLeaders(): Promise<Map<number, number>> {
    const parts = await this.describe([TRANSACTION_STATE_TOPIC]);
    return new Map(parts.map((p) => [p.partition, p.leader]));
  }

  /**
   * __transaction_state exists only after the first FindCoordinator for a transactional id: one
   * InitProducerId creates it, so that scenarios can see its leaders before their gateways start.
   */
  private async ensureTransactionStateTopic(): Promise<void> {
    const producer = new RdKafka.Producer({
      'bootstrap.servers': this.bootstrap,
      'transactional.id': 'faults-bootstrap',
      'client.id': 'txgate-faults',
    });
    await new Promise<void>((resolve, reject) => producer.connect({}, (err) => (err ? reject(err) : resolve())));
    try {
      await new Promise<void>((resolve, reject) => producer.initTransactions(60_000, (err) => (err ? reject(err) : resolve())));
    } finally {
      await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
    }
    await this.waitFor(
      async () => {
        const parts = await this.describe([TRANSACTION_STATE_TOPIC]).catch(() => []);
        return parts.length === TRANSACTION_STATE_PARTITIONS && parts.every((p) => p.leader > 0 && p.isr.length === 3);
      },
      60_000,
      `${TRANSACTION_STATE_TOPIC} to have leaders and full ISRs`,
    );
  }

  async waitFor(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await condition()) return;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
