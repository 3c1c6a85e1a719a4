package dev.spate.clients;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java client's side of the cross-client codec round trips ({@code tests/clients/python/test_codecs.py}
 * drives it): produces a record set given in a file with a chosen codec, and prints what it consumes.
 *
 * <pre>
 *   CodecTool produce RECORDS_FILE TOPIC:CODEC...   one producer (compression.type=CODEC) per topic;
 *                                                   prints "ACK topic index partition offset timestamp"
 *   CodecTool consume COUNT TOPIC...                assign() every partition of each topic, from the
 *                                                   beginning, until COUNT records of each arrived;
 *                                                   prints "REC topic partition offset type timestamp key value [hkey hvalue]..."
 * </pre>
 *
 * <p>Lines are tab-separated. A byte field is {@code ~} for null, else {@code =} and its base64 (so {@code =}
 * alone is empty); header keys are the base64 of their UTF-8. A record line of RECORDS_FILE is
 * {@code partition timestamp key value [hkey hvalue]...}. The broker is $SPATE_BOOTSTRAP. Exit status 0
 * when everything was acknowledged / consumed, 1 with a message on stderr otherwise.
 */
public final class CodecTool {
    private static final long TIMEOUT_SECONDS = 30;

    private CodecTool() {}

    /** One record of the input file. */
    private record Input(int partition, long timestamp, byte[] key, byte[] value, List<Header> headers) {}

    public static void main(String[] args) {
        String bootstrap = System.getenv("SPATE_BOOTSTRAP");
        try {
            if (bootstrap == null || bootstrap.isEmpty()) {
                throw new IllegalArgumentException("SPATE_BOOTSTRAP is not set");
            }
            if (args.length >= 3 && args[0].equals("produce")) {
                produce(bootstrap, read(Path.of(args[1])), Arrays.asList(args).subList(2, args.length));
            } else if (args.length >= 3 && args[0].equals("consume")) {
                consume(bootstrap, Integer.parseInt(args[1]), Arrays.asList(args).subList(2, args.length));
            } else {
                throw new IllegalArgumentException(
                        "usage: CodecTool produce RECORDS_FILE TOPIC:CODEC... | consume COUNT TOPIC...");
            }
        } catch (Throwable error) {
            System.out.flush();
            System.err.println("codec-tool: FAIL: " + error);
            error.printStackTrace();
            System.exit(1);
        }
        System.out.flush();
        System.exit(0);
    }

    private static List<Input> read(Path file) throws IOException {
        List<Input> records = new ArrayList<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (line.isEmpty()) {
                continue;
            }
            String[] fields = line.split("\t", -1);
            if (fields.length < 4 || fields.length % 2 != 0) {
                throw new IllegalArgumentException("bad record line: " + line);
            }
            List<Header> headers = new ArrayList<>();
            for (int i = 4; i < fields.length; i += 2) {
                headers.add(new RecordHeader(new String(decode(fields[i]), StandardCharsets.UTF_8), decode(fields[i + 1])));
            }
            records.add(new Input(Integer.parseInt(fields[0]), Long.parseLong(fields[1]), decode(fields[2]),
                    decode(fields[3]), headers));
        }
        return records;
    }

    private static void produce(String bootstrap, List<Input> records, List<String> targets) throws Exception {
        PrintStream out = System.out;
        for (String target : targets) {
            int colon = target.lastIndexOf(':');
            String topic = target.substring(0, colon);
            String codec = target.substring(colon + 1);
            Properties props = new Properties();
            props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            props.put(ProducerConfig.ACKS_CONFIG, "all");
            props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
            props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30_000);
            props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
            props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
            props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
            props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
                for (Input record : records) {
                    futures.add(producer.send(new ProducerRecord<>(topic, record.partition(), record.timestamp(),
                            record.key(), record.value(), record.headers())));
                }
                producer.flush();
            }
            for (int i = 0; i < futures.size(); i++) {
                RecordMetadata metadata = futures.get(i).get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
                out.println(String.join("\t", "ACK", topic, Integer.toString(i), Integer.toString(metadata.partition()),
                        Long.toString(metadata.hasOffset() ? metadata.offset() : -1), Long.toString(metadata.timestamp())));
            }
        }
    }

    private static void consume(String bootstrap, int count, List<String> topics) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.CHECK_CRCS_CONFIG, "true");
        props.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 100);
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 2000);
        props.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        PrintStream out = System.out;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = new ArrayList<>();
            Map<String, Integer> received = new HashMap<>();
            for (String topic : topics) {
                for (PartitionInfo info : consumer.partitionsFor(topic, Duration.ofSeconds(TIMEOUT_SECONDS))) {
                    partitions.add(new TopicPartition(topic, info.partition()));
                }
                received.put(topic, 0);
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(TIMEOUT_SECONDS);
            while (received.values().stream().anyMatch(n -> n < count)) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("consumed " + received + " records within " + TIMEOUT_SECONDS
                            + " s, want " + count + " of each topic");
                }
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    received.merge(record.topic(), 1, Integer::sum);
                    List<String> fields = new ArrayList<>(List.of("REC", record.topic(),
                            Integer.toString(record.partition()), Long.toString(record.offset()),
                            record.timestampType().toString(), Long.toString(record.timestamp()),
                            encode(record.key()), encode(record.value())));
                    for (Header header : record.headers()) {
                        fields.add(encode(header.key().getBytes(StandardCharsets.UTF_8)));
                        fields.add(encode(header.value()));
                    }
                    out.println(String.join("\t", fields));
                }
            }
        }
    }

    private static String encode(byte[] bytes) {
        return bytes == null ? "~" : "=" + Base64.getEncoder().encodeToString(bytes);
    }

    private static byte[] decode(String field) {
        if (field.equals("~")) {
            return null;
        }
        if (!field.startsWith("=")) {
            throw new IllegalArgumentException("bad byte field: " + field);
        }
        return Base64.getDecoder().decode(field.substring(1));
    }
}
