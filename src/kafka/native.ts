/**
 * The native Kafka client (librdkafka), loaded in one place: every file in src/kafka takes it
 * from here, as `Kafka` (its values and its types), and nothing outside src/kafka imports it, so
 * the rest of txgate runs and tests without it.
 */
import Kafka from '@confluentinc/kafka-javascript';

export { Kafka };
