package dev.spate.clients;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.Utils;

/**
 * Drives a Spate broker with the unmodified Java client (kafka-clients from Maven Central).
 *
 * <p>AdminClient: describeCluster, createTopics, describeTopics, listOffsets. Producer: the default
 * partitioner, acks=all and idempotence on (the client's default, stated so that it is not lost:
 * it needs InitProducerId). Consumer: assign() and seekToBeginning(), no group; every record read
 * back is checked against what was acknowledged (partition, offset, key, value, headers,
 * timestamp). Consumer groups, each member in its own JVM: {@link GroupChecks}.
 *
 * <p>Usage: {@code java -cp ... dev.spate.clients.SpateClientCheck [HOST:PORT [RECORDS]]}; the address
 * defaults to $SPATE_BOOTSTRAP. Exit status 0 when everything matched, 1 with a message otherwise.
 */
public final class SpateClientCheck {
    private static final int PARTITIONS = 3;
    private static final long TIMEOUT_SECONDS = 30;
    private static final long BASE_TIMESTAMP = 1_700_000_000_000L;

    private SpateClientCheck() {}

    /** One record as produced and acknowledged. */
    private record Sent(byte[] key, byte[] value, List<Header> headers, long timestamp, int partition, long offset) {}

    /** A check that did not hold. */
    static final class CheckFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        CheckFailed(String message) {
            super(message);
        }
    }

    public static void main(String[] args) {
        String bootstrap = args.length > 0 ? args[0] : System.getenv("SPATE_BOOTSTRAP");
        int records = args.length > 1 ? Integer.parseInt(args[1]) : 3000;
        if (bootstrap == null || bootstrap.isEmpty()) {
            System.err.println("java: FAIL: no bootstrap address: pass HOST:PORT or set SPATE_BOOTSTRAP");
            System.exit(1);
        }
        try {
            run(bootstrap, records);
        } catch (CheckFailed failed) {
            System.err.println("java: FAIL: " + failed.getMessage());
            System.exit(1);
        } catch (Throwable error) {
            System.err.println("java: FAIL: " + error);
            error.printStackTrace();
            System.exit(1);
        }
        System.out.printf("java: OK (kafka-clients %s; %d records over %d partitions round-tripped exactly;"
                        + " consumer groups: kill -9 failover, cooperative-sticky, group admin)%n",
                org.apache.kafka.common.utils.AppInfoParser.getVersion(), records, PARTITIONS);
        System.exit(0);
    }

    static void check(boolean condition, String message) {
        if (!condition) {
            throw new CheckFailed(message);
        }
    }

    private static void run(String bootstrap, int count) throws Exception {
        String host = bootstrap.substring(0, bootstrap.lastIndexOf(':'));
        int port = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));
        String topic = "java-" + System.nanoTime();

        Properties adminProps = new Properties();
        adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        adminProps.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        adminProps.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        try (Admin admin = Admin.create(adminProps)) {
            DescribeClusterResult cluster = admin.describeCluster();
            Collection<Node> nodes = cluster.nodes().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            check(nodes.size() == 1, "describeCluster: nodes " + nodes + ", want exactly one");
            Node node = nodes.iterator().next();
            check(node.host().equals(host) && node.port() == port,
                    "describeCluster: node " + node + " is not at " + bootstrap);
            String clusterId = cluster.clusterId().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            check(clusterId != null && !clusterId.isEmpty(), "describeCluster: no cluster id");
            Node controller = cluster.controller().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            check(controller != null && controller.id() == node.id(),
                    "describeCluster: controller " + controller + ", want the only node " + node.id());

            CreateTopicsResult created = admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1)));
            created.all().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            check(created.numPartitions(topic).get() == PARTITIONS, "createTopics: partition count not echoed");
            Uuid topicId = created.topicId(topic).get();
            check(topicId != null && !topicId.equals(Uuid.ZERO_UUID), "createTopics: no topic id");
            check(admin.listTopics().names().get(TIMEOUT_SECONDS, TimeUnit.SECONDS).contains(topic),
                    "listTopics lacks " + topic);

            TopicDescription description = admin.describeTopics(List.of(topic)).allTopicNames()
                    .get(TIMEOUT_SECONDS, TimeUnit.SECONDS).get(topic);
            check(description != null, "describeTopics: no description of " + topic);
            check(description.name().equals(topic) && !description.isInternal(), "describeTopics: " + description);
            check(description.topicId().equals(topicId),
                    "describeTopics: topic id " + description.topicId() + ", createTopics said " + topicId);
            check(description.partitions().size() == PARTITIONS, "describeTopics: " + description);
            for (int p = 0; p < PARTITIONS; p++) {
                TopicPartitionInfo info = description.partitions().get(p);
                check(info.partition() == p, "describeTopics: partitions out of order: " + description);
                check(info.leader() != null && info.leader().id() == node.id(), "describeTopics: leader " + info);
                check(info.replicas().size() == 1 && info.replicas().get(0).id() == node.id(),
                        "describeTopics: replicas " + info);
                check(info.isr().size() == 1 && info.isr().get(0).id() == node.id(), "describeTopics: isr " + info);
            }

            Map<Integer, List<Sent>> sent = produce(bootstrap, topic, count);
            consumeAndCheck(bootstrap, topic, count, sent);

            Map<TopicPartition, OffsetSpec> latest = new HashMap<>();
            Map<TopicPartition, OffsetSpec> maxTimestamp = new HashMap<>();
            for (int p = 0; p < PARTITIONS; p++) {
                latest.put(new TopicPartition(topic, p), OffsetSpec.latest());
                maxTimestamp.put(new TopicPartition(topic, p), OffsetSpec.maxTimestamp());
            }
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> ends =
                    admin.listOffsets(latest).all().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> maxes =
                    admin.listOffsets(maxTimestamp).all().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            for (int p = 0; p < PARTITIONS; p++) {
                TopicPartition tp = new TopicPartition(topic, p);
                List<Sent> list = sent.get(p);
                check(ends.get(tp).offset() == list.size(),
                        "admin listOffsets(latest) " + tp + " = " + ends.get(tp) + ", want " + list.size());
                Sent last = list.get(list.size() - 1);
                check(maxes.get(tp).offset() == last.offset() && maxes.get(tp).timestamp() == last.timestamp(),
                        "admin listOffsets(maxTimestamp) " + tp + " = " + maxes.get(tp) + ", want offset "
                                + last.offset() + " timestamp " + last.timestamp());
            }

            GroupChecks.run(bootstrap, admin, node);
        }
    }

    private static Map<Integer, List<Sent>> produce(String bootstrap, String topic, int count) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30_000);
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            for (int i = 0; i < count; i++) {
                // Every tenth record has no key: the sticky partitioner places those.
                byte[] key = i % 10 == 9 ? null : bytes("key-" + (i % 101));
                byte[] value = bytes("value-" + i + "-" + "v".repeat(i % 64));
                List<Header> headers = List.of(
                        new RecordHeader("index", bytes(Integer.toString(i))),
                        new RecordHeader("dup", bytes("a")),
                        new RecordHeader("dup", bytes("b")));
                ProducerRecord<byte[], byte[]> record =
                        new ProducerRecord<>(topic, null, BASE_TIMESTAMP + i, key, value, headers);
                records.add(record);
                futures.add(producer.send(record));
            }
            producer.flush();
        }
        Map<Integer, List<Sent>> sent = new TreeMap<>();
        Map<Integer, Long> lastOffset = new HashMap<>();
        for (int i = 0; i < count; i++) {
            ProducerRecord<byte[], byte[]> record = records.get(i);
            RecordMetadata metadata = futures.get(i).get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            check(metadata.hasOffset(), "record " + i + ": acknowledged without an offset under acks=all");
            check(metadata.timestamp() == record.timestamp(),
                    "record " + i + ": acknowledged timestamp " + metadata.timestamp() + ", sent " + record.timestamp());
            if (record.key() != null) {
                int expected = Utils.toPositive(Utils.murmur2(record.key())) % PARTITIONS;
                check(metadata.partition() == expected,
                        "record " + i + ": the default partitioner chose " + expected + ", acknowledged in " + metadata.partition());
            }
            // One idempotent producer: each partition keeps the order of send() (Kafka's guarantee,
            // whatever the number of requests in flight on the connection).
            long previous = lastOffset.getOrDefault(metadata.partition(), -1L);
            check(metadata.offset() > previous, "record " + i + ": offset " + metadata.offset() + " in partition "
                    + metadata.partition() + ", but an earlier send() got offset " + previous + " there");
            lastOffset.put(metadata.partition(), metadata.offset());
            sent.computeIfAbsent(metadata.partition(), p -> new ArrayList<>())
                    .add(new Sent(record.key(), record.value(), Arrays.asList(record.headers().toArray()),
                            record.timestamp(), metadata.partition(), metadata.offset()));
        }
        for (Map.Entry<Integer, List<Sent>> entry : sent.entrySet()) {
            List<Sent> list = entry.getValue();
            list.sort((a, b) -> Long.compare(a.offset(), b.offset()));
            for (int i = 0; i < list.size(); i++) {
                check(list.get(i).offset() == i, "partition " + entry.getKey() + ": acknowledged offsets are not 0.."
                        + (list.size() - 1) + " (position " + i + " has " + list.get(i).offset() + ")");
            }
        }
        check(sent.size() == PARTITIONS, "records landed in partitions " + sent.keySet() + ", want all " + PARTITIONS);
        return sent;
    }

    private static void consumeAndCheck(String bootstrap, String topic, int count, Map<Integer, List<Sent>> sent) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 500);
        props.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        List<TopicPartition> partitions = new ArrayList<>();
        for (int p = 0; p < PARTITIONS; p++) {
            partitions.add(new TopicPartition(topic, p));
        }
        Map<Integer, List<ConsumerRecord<byte[], byte[]>>> got = new TreeMap<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);

            Map<TopicPartition, Long> beginnings = consumer.beginningOffsets(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
            for (TopicPartition tp : partitions) {
                check(beginnings.get(tp) == 0L, "beginningOffsets " + tp + " = " + beginnings.get(tp));
                check(ends.get(tp) == sent.get(tp.partition()).size(),
                        "endOffsets " + tp + " = " + ends.get(tp) + ", want " + sent.get(tp.partition()).size());
            }

            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_SECONDS);
            int received = 0;
            for (int polls = 0; received < count; polls++) {
                check(System.nanoTime() < deadline && polls < 10_000,
                        "consumed " + received + " of " + count + " records within " + TIMEOUT_SECONDS + " s");
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
                    got.computeIfAbsent(record.partition(), p -> new ArrayList<>()).add(record);
                    received++;
                }
            }
            check(received == count, "consumed " + received + " records, produced " + count);

            // offsetsForTimes: each partition's records have increasing timestamps, so the
            // timestamp of its i-th record finds exactly that record.
            Map<TopicPartition, Long> query = new HashMap<>();
            for (TopicPartition tp : partitions) {
                List<Sent> list = sent.get(tp.partition());
                query.put(tp, list.get(list.size() / 2).timestamp());
            }
            Map<TopicPartition, OffsetAndTimestamp> found = consumer.offsetsForTimes(query);
            for (TopicPartition tp : partitions) {
                List<Sent> list = sent.get(tp.partition());
                Sent middle = list.get(list.size() / 2);
                OffsetAndTimestamp answer = found.get(tp);
                check(answer != null && answer.offset() == middle.offset() && answer.timestamp() == middle.timestamp(),
                        "offsetsForTimes " + tp + " @" + middle.timestamp() + " = " + answer + ", want offset " + middle.offset());
            }
        }

        for (Map.Entry<Integer, List<Sent>> entry : sent.entrySet()) {
            int p = entry.getKey();
            List<Sent> want = entry.getValue();
            List<ConsumerRecord<byte[], byte[]>> records = got.getOrDefault(p, List.of());
            check(records.size() == want.size(),
                    "partition " + p + ": consumed " + records.size() + " records, produced " + want.size());
            for (int i = 0; i < want.size(); i++) {
                Sent w = want.get(i);
                ConsumerRecord<byte[], byte[]> r = records.get(i);
                String where = "partition " + p + " offset " + w.offset() + ": ";
                check(r.offset() == w.offset(), where + "consumed offset " + r.offset() + " in that position");
                check(Arrays.equals(r.key(), w.key()), where + "key " + text(r.key()) + ", want " + text(w.key()));
                check(Arrays.equals(r.value(), w.value()), where + "value " + text(r.value()) + ", want " + text(w.value()));
                check(r.timestamp() == w.timestamp() && r.timestampType() == TimestampType.CREATE_TIME,
                        where + "timestamp " + r.timestamp() + " " + r.timestampType() + ", want " + w.timestamp() + " CreateTime");
                Header[] headers = r.headers().toArray();
                check(headers.length == w.headers().size(), where + "headers " + Arrays.toString(headers));
                for (int h = 0; h < headers.length; h++) {
                    check(headers[h].key().equals(w.headers().get(h).key())
                                    && Arrays.equals(headers[h].value(), w.headers().get(h).value()),
                            where + "headers " + Arrays.toString(headers) + ", want " + w.headers());
                }
            }
        }
    }

    private static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private static String text(byte[] bytes) {
        return bytes == null ? "null" : '"' + new String(bytes, StandardCharsets.UTF_8) + '"';
    }
}
