/**
 * The TypeBox schemas of the HTTP API. The same objects validate requests (through Fastify's Ajv)
 * and make up the OpenAPI document (openapi.ts), so the two cannot drift apart.
 *
 * Limits that are configurable (records per request, record size, header count) are checked in
 * code (records.ts), not here: the schema stays fixed and the limits answer 413.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** Kafka's legal topic names (Topic.validate in the broker). */
export const TOPIC_NAME_PATTERN = '^[a-zA-Z0-9._-]{1,249}$';
const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';

export const RecordSchema = Type.Object(
  {
    topic: Type.String({ pattern: TOPIC_NAME_PATTERN, description: 'The topic to write to; it must exist.' }),
    partition: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 2147483647,
        description: "The partition; omitted: Kafka's partitioner picks one (by key when there is one).",
      }),
    ),
    key: Type.Optional(Type.String({ description: 'The record key as a UTF-8 string.' })),
    keyBase64: Type.Optional(
      Type.String({ pattern: BASE64_PATTERN, contentEncoding: 'base64', description: 'The record key as raw bytes (standard base64).' }),
    ),
    value: Type.Optional(
      Type.Unknown({
        description:
          'Any JSON value; it is written as its JSON text (`null` is written as the text null). ' +
          'Omit both value and valueBase64 to write a record with a null value (a tombstone).',
      }),
    ),
    valueBase64: Type.Optional(
      Type.String({ pattern: BASE64_PATTERN, contentEncoding: 'base64', description: 'The record value as raw bytes (standard base64).' }),
    ),
    headers: Type.Optional(
      Type.Object({}, { additionalProperties: Type.String(), description: 'Record headers: names to UTF-8 string values.' }),
    ),
  },
  {
    additionalProperties: false,
    // Kept as two separate `not`s so the error mapper can tell which pair was given twice.
    allOf: [{ not: { required: ['key', 'keyBase64'] } }, { not: { required: ['value', 'valueBase64'] } }],
    description: 'One Kafka record. key and keyBase64 are mutually exclusive, and so are value and valueBase64.',
  },
);

export const TransactionRequestSchema = Type.Object(
  {
    records: Type.Array(RecordSchema, {
      minItems: 1,
      description: 'The records to commit in one Kafka transaction: all of them become visible, or none.',
    }),
  },
  { additionalProperties: false },
);
export type TransactionRequest = Static<typeof TransactionRequestSchema>;
export type RecordInput = Static<typeof RecordSchema>;

export const RecordPositionSchema = Type.Object({
  topic: Type.String(),
  partition: Type.Integer({ minimum: 0 }),
  offset: Type.String({ pattern: '^[0-9]+$', description: 'The offset as a decimal string (Kafka offsets are 64-bit).' }),
});

export const TransactionCommittedSchema = Type.Object({
  status: Type.Literal('committed'),
  records: Type.Array(RecordPositionSchema, { description: "Each record's position, in request order." }),
});
export type TransactionCommitted = Static<typeof TransactionCommittedSchema>;

export const FieldErrorSchema = Type.Object({
  pointer: Type.String({ description: 'RFC 6901 JSON Pointer to the offending part of the request body.' }),
  detail: Type.String(),
});

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ format: 'uri-reference', description: 'Stable URI reference identifying the problem type: a page the gateway serves (/problems/<slug>), relative to the request URL.' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String({ description: 'What happened and what to do about it.' }),
    instance: Type.Optional(Type.String({ description: 'Identifies this occurrence (the request id).' })),
    code: Type.String({ description: 'Stable machine-readable code, e.g. TXGATE_UNKNOWN_TOPIC.' }),
    errors: Type.Optional(Type.Array(FieldErrorSchema)),
  },
  { additionalProperties: true, description: 'RFC 9457 problem details.' },
);

export const IDEMPOTENCY_KEY_PATTERN = '^[\\x20-\\x7E]{1,255}$';

export const HealthSchema = Type.Object({ status: Type.String() });

export const ReadySchema = Type.Object(
  {
    status: Type.String(),
    checks: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: true },
);

/** A deep copy without TypeBox's symbol keys and with undefined members dropped: plain JSON Schema. */
export function plainSchema(schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}
