// Here, beside the adapters, because client properties are theirs: only they and the composition root (config, service wiring) use them, and no port does.
/** librdkafka client properties ('bootstrap.servers', TLS/SASL settings, tuning), passed through. */
export type KafkaProps = Record<string, string | number | boolean>;
