package dev.spate.clients;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Produces to every partition of a topic, round robin, from a background thread (or in one batch with
 * {@link #produceNow}), and keeps what was acknowledged: partition, offset, value and the time it was
 * sent. Values are {@code TAG-pPARTITION-INDEX}, unique within a topic.
 */
final class Feeder implements AutoCloseable {
    /** An acknowledged record; sentAt is the wall-clock time of send(). */
    record Acked(int partition, long offset, String value, long sentAt) {}

    private final KafkaProducer<String, String> producer;
    private final String topic;
    private final int partitions;
    private final List<Acked> acked = new CopyOnWriteArrayList<>();
    private final List<String> errors = new CopyOnWriteArrayList<>();
    private volatile boolean running;
    private Thread thread;
    private int sent;

    Feeder(String bootstrap, String topic, int partitions) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30_000);
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        this.producer = new KafkaProducer<>(props);
        this.topic = topic;
        this.partitions = partitions;
    }

    private void send(String tag) {
        int partition = sent % partitions;
        String value = tag + "-p" + partition + "-" + sent;
        sent++;
        long at = System.currentTimeMillis();
        producer.send(new ProducerRecord<>(topic, partition, null, value), (metadata, error) -> {
            if (error != null) {
                errors.add(value + ": " + error);
            } else {
                acked.add(new Acked(metadata.partition(), metadata.offset(), value, at));
            }
        });
    }

    /** Produces perPartition records to every partition and waits for them. */
    void produceNow(String tag, int perPartition) {
        for (int i = 0; i < perPartition * partitions; i++) {
            send(tag);
        }
        producer.flush();
        checkErrors();
    }

    /** Starts producing about one record per intervalMs in the background. */
    void start(String tag, long intervalMs) {
        running = true;
        thread = new Thread(() -> {
            while (running) {
                send(tag);
                try {
                    Thread.sleep(intervalMs);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "feeder-" + tag);
        thread.setDaemon(true);
        thread.start();
    }

    /** Stops the background producer and waits for every acknowledgement. */
    void stop() throws InterruptedException {
        running = false;
        if (thread != null) {
            thread.join(TimeUnit.SECONDS.toMillis(10));
            thread = null;
        }
        producer.flush();
        checkErrors();
    }

    private void checkErrors() {
        SpateClientCheck.check(errors.isEmpty(), "produce to " + topic + " failed: " + errors);
    }

    /** Every acknowledged record by (partition, offset). */
    Map<String, Acked> acked() {
        Map<String, Acked> all = new TreeMap<>();
        for (Acked a : acked) {
            all.put(a.partition() + "@" + a.offset(), a);
        }
        SpateClientCheck.check(all.size() == acked.size(), "two acknowledgements share a partition and offset");
        return all;
    }

    /** Partition → its end offset (one past the highest acknowledged offset). */
    Map<Integer, Long> ends() {
        Map<Integer, Long> ends = new TreeMap<>();
        for (Acked a : acked) {
            ends.merge(a.partition(), a.offset() + 1, Math::max);
        }
        return ends;
    }

    List<Acked> list() {
        return new ArrayList<>(acked);
    }

    @Override
    public void close() {
        running = false;
        producer.close();
    }
}
