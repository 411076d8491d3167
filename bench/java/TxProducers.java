import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The peer a Java shop would use: N transactional producers (kafka-clients), each looping
 * begin / send R records / commit for a fixed time. Prints one JSON line with the counts and
 * per-transaction latency percentiles, and the requests the producers sent while looping (so
 * round trips per transaction), so the Node harness can put it beside its own modes.
 *
 * Args: bootstrap topic producers recordsPerTx seconds idPrefix
 */
public final class TxProducers {
  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    String topic = args[1];
    int producers = Integer.parseInt(args[2]);
    int records = Integer.parseInt(args[3]);
    double seconds = Double.parseDouble(args[4]);
    String prefix = args[5];
    byte[] value = new byte[256];
    Arrays.fill(value, (byte) 'x');

    List<KafkaProducer<byte[], byte[]>> list = new ArrayList<>();
    for (int i = 0; i < producers; i++) {
      Properties p = new Properties();
      p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, prefix + "-" + i);
      p.put(ProducerConfig.LINGER_MS_CONFIG, 0);
      p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
      p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
      KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
      producer.initTransactions();
      list.add(producer);
    }

    double requestsBefore = requests(list);
    AtomicLong committed = new AtomicLong();
    ConcurrentHashMap<String, AtomicLong> errors = new ConcurrentHashMap<>();
    long[][] latencies = new long[producers][];
    int[] counts = new int[producers];
    long startMs = System.currentTimeMillis();
    long start = System.nanoTime();
    long end = start + (long) (seconds * 1e9);
    Thread[] threads = new Thread[producers];
    for (int i = 0; i < producers; i++) {
      final int slot = i;
      latencies[slot] = new long[1 << 16];
      threads[i] = new Thread(() -> {
        KafkaProducer<byte[], byte[]> producer = list.get(slot);
        long seq = 0;
        while (System.nanoTime() < end) {
          long t = System.nanoTime();
          try {
            producer.beginTransaction();
            for (int r = 0; r < records; r++) {
              producer.send(new ProducerRecord<>(topic, (prefix + "." + slot + "." + seq + "." + r).getBytes(), value));
            }
            producer.commitTransaction();
            committed.incrementAndGet();
            if (counts[slot] == latencies[slot].length) latencies[slot] = Arrays.copyOf(latencies[slot], counts[slot] * 2);
            latencies[slot][counts[slot]++] = System.nanoTime() - t;
          } catch (Exception e) {
            errors.computeIfAbsent(e.getClass().getSimpleName(), k -> new AtomicLong()).incrementAndGet();
            try {
              producer.abortTransaction();
            } catch (Exception ignored) {
              // A fatal error: this producer stops; the count above shows it.
              return;
            }
          }
          seq++;
        }
      });
      threads[i].start();
    }
    for (Thread t : threads) t.join();
    double elapsed = (System.nanoTime() - start) / 1e9;
    long endMs = System.currentTimeMillis();
    double requestsSent = requests(list) - requestsBefore;
    for (KafkaProducer<byte[], byte[]> producer : list) producer.close();

    int total = 0;
    for (int c : counts) total += c;
    long[] all = new long[total];
    int k = 0;
    for (int i = 0; i < producers; i++) {
      System.arraycopy(latencies[i], 0, all, k, counts[i]);
      k += counts[i];
    }
    Arrays.sort(all);
    StringBuilder err = new StringBuilder("{");
    errors.forEach((name, n) -> err.append(err.length() > 1 ? "," : "").append('"').append(name).append("\":").append(n.get()));
    err.append('}');
    System.out.println("{\"committed\":" + committed.get() + ",\"seconds\":" + elapsed
        + ",\"p50\":" + pct(all, 50) + ",\"p99\":" + pct(all, 99) + ",\"p999\":" + pct(all, 99.9)
        + ",\"errors\":" + err + ",\"requests\":" + (long) requestsSent + ",\"window\":{\"startMs\":" + startMs + ",\"endMs\":" + endMs + "}}");
  }

  /** Requests the producers have sent so far, to every broker (the client's request-total metric). */
  private static double requests(List<KafkaProducer<byte[], byte[]>> list) {
    double total = 0;
    for (KafkaProducer<byte[], byte[]> producer : list) {
      for (var e : producer.metrics().entrySet()) {
        if (e.getKey().name().equals("request-total") && e.getKey().group().equals("producer-metrics")) total += ((Number) e.getValue().metricValue()).doubleValue();
      }
    }
    return total;
  }

  private static double pct(long[] sorted, double p) {
    if (sorted.length == 0) return -1;
    int i = Math.min(sorted.length - 1, (int) Math.floor(p / 100 * sorted.length));
    return sorted[i] / 1e6;
  }
}
