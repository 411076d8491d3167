/**
 * The error table in src/pool/classify.ts, against the errors librdkafka 2.15 really raised on a
 * Kafka 4.3 broker (test/integration/foundation.test.ts records them): fencing arrives as -144
 * with isFatal on commit and abort but with NO flags on begin, and a fenced producer's pending
 * records fail with -152 (_PURGE_QUEUE).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classify, isFencing, KafkaCode, type TxStep } from '../../src/pool/classify.js';
import { KafkaClientError, type KafkaErrorFlags } from '../../src/pool/producer-port.js';

const kafkaError = (code: number, flags: Partial<KafkaErrorFlags> = {}, message = 'x') =>
  new KafkaClientError(message, { code, fatal: false, retriable: false, txnRequiresAbort: false, ...flags });

const cases: Array<[string, unknown, TxStep, 'retry' | 'abort' | 'replace']> = [
  ['fenced on commit (-144, fatal)', kafkaError(KafkaCode._FENCED, { fatal: true }), 'commit', 'replace'],
  ['fenced on begin (-144, no flags)', kafkaError(KafkaCode._FENCED), 'begin', 'replace'],
  ['fenced on abort', kafkaError(KafkaCode._FENCED, { fatal: true }), 'abort', 'replace'],
  ['PRODUCER_FENCED from the broker', kafkaError(KafkaCode.PRODUCER_FENCED), 'commit', 'replace'],
  ['INVALID_PRODUCER_EPOCH', kafkaError(KafkaCode.INVALID_PRODUCER_EPOCH), 'send-offsets', 'replace'],
  ['any fatal error', kafkaError(-1, { fatal: true }), 'commit', 'replace'],
  ['a purged delivery of a fenced producer', kafkaError(KafkaCode._PURGE_QUEUE), 'send', 'abort'],
  ['a record too large', kafkaError(KafkaCode.MSG_SIZE_TOO_LARGE), 'send', 'abort'],
  ['commit that failed a delivery (_INCONSISTENT, abortable)', kafkaError(-149, { txnRequiresAbort: true }), 'commit', 'abort'],
  ['TRANSACTION_ABORTABLE (KIP-890)', kafkaError(KafkaCode.TRANSACTION_ABORTABLE), 'commit', 'abort'],
  ['abortable error while aborting', kafkaError(-149, { txnRequiresAbort: true }), 'abort', 'replace'],
  ['commit timed out (retriable)', kafkaError(KafkaCode._TIMED_OUT, { retriable: true }), 'commit', 'retry'],
  ['commit timed out (code only)', kafkaError(KafkaCode._TIMED_OUT), 'commit', 'retry'],
  ['CONCURRENT_TRANSACTIONS on begin', kafkaError(KafkaCode.CONCURRENT_TRANSACTIONS), 'begin', 'retry'],
  ['coordinator moved', kafkaError(KafkaCode.NOT_COORDINATOR), 'send-offsets', 'retry'],
  ['a commit already in progress (-173)', kafkaError(KafkaCode._CONFLICT), 'abort', 'replace'],
  ['state error (-172)', kafkaError(KafkaCode._STATE), 'begin', 'replace'],
  ['not a Kafka error, on commit', new Error('bug'), 'commit', 'replace'],
  ['not a Kafka error, on send', new Error('bug'), 'send', 'abort'],
];

describe('classify', () => {
  for (const [name, error, step, expected] of cases) {
    it(`${name} on ${step} -> ${expected}`, () => assert.equal(classify(error, step), expected));
  }
});

describe('isFencing', () => {
  it('recognises the codes librdkafka and the broker use for fencing', () => {
    assert.equal(isFencing(kafkaError(KafkaCode._FENCED)), true);
    assert.equal(isFencing(kafkaError(KafkaCode.PRODUCER_FENCED)), true);
    assert.equal(isFencing(kafkaError(KafkaCode._FATAL, { fatal: true }, 'this instance has been fenced by a newer instance')), true);
  });
  it('does not call other fatal errors fencing', () => {
    assert.equal(isFencing(kafkaError(KafkaCode._FATAL, { fatal: true }, 'authorization failed')), false);
    assert.equal(isFencing(kafkaError(KafkaCode._PURGE_QUEUE)), false);
    assert.equal(isFencing(new Error('fenced')), false);
  });
});
