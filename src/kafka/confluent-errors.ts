/**
 * Converts @confluentinc/kafka-javascript errors to the pool's KafkaClientError.
 *
 * The flags are read from the native error's own fields (isFatal, isRetriable,
 * isTxnRequiresAbort): the client's KafkaJS-style layer reads differently named fields and so
 * always reports false, which is why the pool uses the lower-level API.
 */
import { KafkaClientError } from '../pool/producer-port.js';
import { Kafka } from './native.js';

const codes: Record<string, number> = Kafka.CODES.ERRORS;

let namesByCode: Map<number, string> | undefined;

export function kafkaCodeName(code: number): string | undefined {
  namesByCode ??= new Map(Object.entries(codes).map(([name, value]) => [value, name.replace(/^ERR_/, '')]));
  return namesByCode.get(code);
}

interface NativeError {
  message?: string;
  code?: number;
  isFatal?: boolean;
  isRetriable?: boolean;
  isTxnRequiresAbort?: boolean;
}

export function toKafkaClientError(error: unknown, context: string): KafkaClientError {
  if (error instanceof KafkaClientError) return error;
  const e = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as NativeError;
  const code = typeof e.code === 'number' ? e.code : -1;
  const codeName = kafkaCodeName(code);
  const message = `${context}: ${e.message ?? 'unknown error'}${codeName ? ` (${codeName})` : ''}`;
  return new KafkaClientError(
    message,
    {
      code,
      codeName,
      fatal: e.isFatal === true,
      retriable: e.isRetriable === true,
      txnRequiresAbort: e.isTxnRequiresAbort === true,
    },
    { cause: error },
  );
}
