package dev.spate.clients;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Drives Spate's KIP-848 coordinator with the unmodified Java client and {@code group.protocol=consumer}.
 *
 * <p>Three consumers subscribe to a 6-partition topic: their assignments (computed by the broker)
 * must become disjoint and cover every partition. They consume what was produced and commit;
 * {@code committed()} must return their positions. One consumer closes: its partitions must move to
 * the other two, which then consume everything produced afterwards. The admin client must describe
 * the group as a consumer-protocol group.
 *
 * <p>Usage: {@code java -cp ... dev.spate.clients.ConsumerProtocolCheck [HOST:PORT]}; the address
 * defaults to $SPATE_BOOTSTRAP. Exit status 0 when everything held, 1 with a message otherwise.
 */
public final class ConsumerProtocolCheck {
    private static final int PARTITIONS = 6;
    private static final int RECORDS_PER_ROUND = 300;
    private static final long TIMEOUT_SECONDS = 60;

    private ConsumerProtocolCheck() {}

    /** A check that did not hold. */
    private static final class CheckFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        CheckFailed(String message) {
            super(message);
        }
    }

    public static void main(String[] args) {
        String bootstrap = args.length > 0 ? args[0] : System.getenv("SPATE_BOOTSTRAP");
        if (bootstrap == null || bootstrap.isEmpty()) {
            System.err.println("java consumer protocol: FAIL: no bootstrap address: pass HOST:PORT or set SPATE_BOOTSTRAP");
            System.exit(1);
        }
        try {
            run(bootstrap);
        } catch (CheckFailed failed) {
            System.err.println("java consumer protocol: FAIL: " + failed.getMessage());
            System.exit(1);
        } catch (Throwable error) {
            System.err.println("java consumer protocol: FAIL: " + error);
            error.printStackTrace();
            System.exit(1);
        }
        System.out.printf("java consumer protocol: OK (kafka-clients %s; 3 then 2 consumers, %d records over %d partitions)%n",
                org.apache.kafka.common.utils.AppInfoParser.getVersion(), 2 * RECORDS_PER_ROUND, PARTITIONS);
        System.exit(0);
    }

    private static void check(boolean condition, String message) {
        if (!condition) {
            throw new CheckFailed(message);
        }
    }

    private static KafkaConsumer<String, String> consumer(String bootstrap, String group, String name) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, name);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return new KafkaConsumer<>(props);
    }

    private static void produce(String bootstrap, String topic, int round) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            for (int i = 0; i < RECORDS_PER_ROUND; i++) {
                byte[] value = ("r" + round + "-" + i).getBytes(StandardCharsets.UTF_8);
                producer.send(new ProducerRecord<>(topic, i % PARTITIONS, null, value));
            }
            producer.flush();
        }
    }

    /**
     * Polls every consumer until their assignments are disjoint, cover the topic, leave nobody
     * empty, and every record in {@code expected} was consumed; collects what was consumed.
     */
    private static void pollUntilSettled(List<KafkaConsumer<String, String>> consumers, String topic,
            Set<String> consumed, Set<String> expected, String phase) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_SECONDS);
        String last = "";
        while (true) {
            for (KafkaConsumer<String, String> consumer : consumers) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(100))) {
                    consumed.add(record.value());
                }
            }
            Set<TopicPartition> union = new HashSet<>();
            int total = 0;
            boolean nobodyEmpty = true;
            List<Set<TopicPartition>> assignments = new ArrayList<>();
            for (KafkaConsumer<String, String> consumer : consumers) {
                Set<TopicPartition> assignment = consumer.assignment();
                assignments.add(assignment);
                union.addAll(assignment);
                total += assignment.size();
                nobodyEmpty &= !assignment.isEmpty();
            }
            boolean covering = union.size() == PARTITIONS && total == PARTITIONS;
            last = "assignments " + assignments + ", consumed " + consumed.size() + "/" + expected.size();
            if (covering && nobodyEmpty && consumed.containsAll(expected)) {
                System.out.println("java consumer protocol: " + phase + ": " + assignments);
                return;
            }
            check(System.nanoTime() < deadline, phase + ": not settled within " + TIMEOUT_SECONDS + " s: " + last);
        }
    }

    private static Set<String> round(int round) {
        Set<String> values = new HashSet<>();
        for (int i = 0; i < RECORDS_PER_ROUND; i++) {
            values.add("r" + round + "-" + i);
        }
        return values;
    }

    /** Commits each consumer's positions and checks that committed() returns them. */
    private static void commitAndCheck(List<KafkaConsumer<String, String>> consumers) {
        for (KafkaConsumer<String, String> consumer : consumers) {
            Map<TopicPartition, OffsetAndMetadata> positions = new HashMap<>();
            for (TopicPartition partition : consumer.assignment()) {
                positions.put(partition, new OffsetAndMetadata(consumer.position(partition)));
            }
            consumer.commitSync(positions, Duration.ofSeconds(TIMEOUT_SECONDS));
            Map<TopicPartition, OffsetAndMetadata> committed =
                    consumer.committed(positions.keySet(), Duration.ofSeconds(TIMEOUT_SECONDS));
            for (Map.Entry<TopicPartition, OffsetAndMetadata> entry : positions.entrySet()) {
                OffsetAndMetadata got = committed.get(entry.getKey());
                check(got != null && got.offset() == entry.getValue().offset(),
                        "committed(" + entry.getKey() + ") = " + got + ", want " + entry.getValue().offset());
            }
        }
    }

    private static void run(String bootstrap) throws Exception {
        String topic = "kip848-" + System.nanoTime();
        String group = "kip848-group-" + System.nanoTime();
        Properties adminProps = new Properties();
        adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        adminProps.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        try (Admin admin = Admin.create(adminProps)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all()
                    .get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            produce(bootstrap, topic, 1);

            List<KafkaConsumer<String, String>> consumers = new ArrayList<>();
            for (int i = 1; i <= 3; i++) {
                KafkaConsumer<String, String> consumer = consumer(bootstrap, group, "kip848-consumer-" + i);
                consumer.subscribe(List.of(topic));
                consumers.add(consumer);
            }
            Set<String> consumed = new HashSet<>();
            try {
                pollUntilSettled(consumers, topic, consumed, round(1), "three consumers");
                commitAndCheck(consumers);

                ConsumerGroupDescription description = admin.describeConsumerGroups(List.of(group)).all()
                        .get(TIMEOUT_SECONDS, TimeUnit.SECONDS).get(group);
                check(description.type() == GroupType.CONSUMER, "describeConsumerGroups: type " + description.type());
                check(description.members().size() == 3, "describeConsumerGroups: members " + description.members());

                // One consumer leaves: its partitions move to the other two.
                KafkaConsumer<String, String> leaving = consumers.remove(2);
                leaving.close(CloseOptions.timeout(Duration.ofSeconds(TIMEOUT_SECONDS)));
                produce(bootstrap, topic, 2);
                Set<String> everything = round(1);
                everything.addAll(round(2));
                pollUntilSettled(consumers, topic, consumed, everything, "after one consumer closed");
                commitAndCheck(consumers);
                check(consumed.equals(everything), "consumed " + consumed.size() + " distinct records, want "
                        + everything.size());
            } finally {
                for (KafkaConsumer<String, String> consumer : consumers) {
                    consumer.close(CloseOptions.timeout(Duration.ofSeconds(TIMEOUT_SECONDS)));
                }
            }
        }
    }
}
