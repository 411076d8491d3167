/**
 * The `tx` a caller's work receives. It forwards sends to the slot's producer while the
 * transaction is open, remembers every delivery so the pool can wait for them before it commits,
 * and goes dead the moment the pool ends the transaction, so a handle that escaped its callback
 * can never write into somebody else's transaction on the same producer.
 */
import { TransactionClosedError } from '../errors.js';
import { KafkaClientError, type OutgoingRecord, type RecordMetadata, type TopicPartitionOffset, type TransactionalProducer } from './producer-port.js';
import type { Transaction } from './types.js';

export class TransactionHandle implements Transaction {
  private open = true;
  private readonly deliveries: Promise<RecordMetadata>[] = [];
  private firstFailure: { error: unknown } | undefined;
  private brokerRefusal = false;
  private readonly offsetCalls: Promise<void>[] = [];

  constructor(
    readonly transactionalId: string,
    readonly slot: number,
    private readonly producer: TransactionalProducer,
    private readonly sendOffsetsWithRetry: (offsets: TopicPartitionOffset[], consumer: unknown) => Promise<void>,
  ) {}

  send(records: OutgoingRecord | OutgoingRecord[]): Promise<RecordMetadata[]> {
    if (!this.open) return Promise.reject(new TransactionClosedError());
    const list = Array.isArray(records) ? records : [records];
    const sent = list.map((record) => {
      const delivery = this.producer.send(record);
      // Recorded even when the caller never awaits it: an unnoticed failed record must still
      // abort the transaction instead of being committed around.
      delivery.catch((error) => {
        this.firstFailure ??= { error };
        // Kafka's own error codes are >= 0; librdkafka's local ones (purges, timeouts) are negative.
        if (error instanceof KafkaClientError && error.code >= 0) this.brokerRefusal = true;
      });
      this.deliveries.push(delivery);
      return delivery;
    });
    return Promise.all(sent);
  }

  sendOffsets(offsets: TopicPartitionOffset[], consumer: unknown): Promise<void> {
    if (!this.open) return Promise.reject(new TransactionClosedError());
    const call = this.sendOffsetsWithRetry(offsets, consumer);
    call.catch((error) => {
      this.firstFailure ??= { error };
    });
    this.offsetCalls.push(call);
    return call;
  }

  /** Ends the handle: later calls fail with TransactionClosedError. */
  close(): void {
    this.open = false;
  }

  /** Waits for every send and offset commit; throws the first failure so the pool aborts. */
  async settle(): Promise<RecordMetadata[]> {
    await Promise.allSettled([...this.deliveries, ...this.offsetCalls]);
    if (this.firstFailure) throw this.firstFailure.error;
    return Promise.all(this.deliveries);
  }

  /** Waits only for offset commits (bounded by their own timeout), not for deliveries. */
  async settleOffsets(): Promise<void> {
    await Promise.allSettled(this.offsetCalls);
  }

  /** The broker refused one of this transaction's records (too large, invalid, ...). */
  get refusedByBroker(): boolean {
    return this.brokerRefusal;
  }

  /** Nothing was sent and no offsets were added. */
  get isEmpty(): boolean {
    return this.deliveries.length === 0 && this.offsetCalls.length === 0;
  }

  get recordCount(): number {
    return this.deliveries.length;
  }
}
