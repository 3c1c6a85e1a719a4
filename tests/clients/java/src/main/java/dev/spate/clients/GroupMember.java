package dev.spate.clients;

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * One member of a classic consumer group, run as its own JVM by {@link MemberProcess} so that it can be
 * killed with SIGKILL. It subscribes to one topic, and for every poll prints the records it consumed,
 * flushes, then commits their offsets synchronously (commit after processing); the rebalance listener
 * also commits what is pending before partitions are revoked. It closes (LeaveGroup) on a "close" line
 * or end of file on stdin, so that it never outlives the parent.
 *
 * <p>Stdout protocol, one event per line, each with the wall-clock time in ms:
 * {@code SUBSCRIBED t}, {@code ASSIGNED t gen memberId parts}, {@code REVOKED t gen parts},
 * {@code LOST t gen parts}, {@code RECORD t partition offset value}, {@code COMMITTED t p=o,...},
 * {@code COMMITFAIL t error}, {@code CLOSED t}, {@code ERROR t error}; parts is "0,3,5" or "-".
 *
 * <p>Usage: {@code GroupMember BOOTSTRAP GROUP TOPIC CLIENT_ID range|cooperative-sticky SESSION_TIMEOUT_MS}
 */
public final class GroupMember {
    /** A member never outlives this, whatever the parent does. */
    private static final long MAX_LIFETIME_MS = 200_000;

    private final PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
    private final KafkaConsumer<String, String> consumer;
    /** Offsets processed (printed) but not yet committed. */
    private final Map<TopicPartition, OffsetAndMetadata> pending = new HashMap<>();

    private GroupMember(KafkaConsumer<String, String> consumer) {
        this.consumer = consumer;
    }

    public static void main(String[] args) {
        if (args.length != 6) {
            System.err.println("usage: GroupMember BOOTSTRAP GROUP TOPIC CLIENT_ID range|cooperative-sticky SESSION_TIMEOUT_MS");
            System.exit(2);
        }
        String assignor = switch (args[4]) {
            case "range" -> RangeAssignor.class.getName();
            case "cooperative-sticky" -> CooperativeStickyAssignor.class.getName();
            default -> throw new IllegalArgumentException("assignor " + args[4]);
        };
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, args[1]);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, args[3]);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
        props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, args[5]);
        props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
        // The rebalance timeout: bounds a rebalance round that waits for a member that never rejoins.
        props.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, 30_000);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 50);
        props.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, 200);
        props.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        props.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20_000);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());

        Thread lifetime = new Thread(() -> {
            try {
                Thread.sleep(MAX_LIFETIME_MS);
            } catch (InterruptedException e) {
                return;
            }
            System.err.println("GroupMember: still running after " + MAX_LIFETIME_MS + " ms; exiting");
            Runtime.getRuntime().halt(3);
        });
        lifetime.setDaemon(true);
        lifetime.start();

        int status;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            status = new GroupMember(consumer).run(args[2]);
        }
        System.exit(status);
    }

    private int run(String topic) {
        AtomicBoolean stop = new AtomicBoolean();
        Thread stdin = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null && !line.trim().equals("close")) {
                    // Only "close" means anything.
                }
            } catch (Exception e) {
                // End of input either way.
            }
            stop.set(true);
            consumer.wakeup();
        });
        stdin.setDaemon(true);
        stdin.start();

        try {
            consumer.subscribe(List.of(topic), new Listener());
            emit("SUBSCRIBED");
            while (!stop.get()) {
                ConsumerRecords<String, String> records;
                try {
                    records = consumer.poll(Duration.ofMillis(200));
                } catch (WakeupException e) {
                    break;
                }
                for (ConsumerRecord<String, String> record : records) {
                    emit("RECORD " + record.partition() + " " + record.offset() + " " + record.value());
                    pending.put(new TopicPartition(record.topic(), record.partition()),
                            new OffsetAndMetadata(record.offset() + 1));
                }
                out.flush();
                try {
                    commitPending();
                } catch (WakeupException e) {
                    break;
                }
            }
            // WakeupException is one-shot: this commit and close() run normally.
            commitPending();
            consumer.close(CloseOptions.timeout(Duration.ofSeconds(10)));
            emit("CLOSED");
            return 0;
        } catch (Exception e) {
            emit("ERROR " + e.toString().replace('\n', ' '));
            e.printStackTrace();
            return 1;
        }
    }

    /** Commits the processed offsets synchronously; a refused commit is reported and kept pending. */
    private void commitPending() {
        if (pending.isEmpty()) {
            return;
        }
        try {
            consumer.commitSync(pending);
            StringBuilder line = new StringBuilder("COMMITTED ");
            pending.forEach((tp, offset) -> line.append(tp.partition()).append('=').append(offset.offset()).append(','));
            line.setLength(line.length() - 1);
            emit(line.toString());
            pending.clear();
        } catch (WakeupException e) {
            throw e;
        } catch (KafkaException e) {
            // CommitFailedException, RebalanceInProgressException...: retried before a revoke.
            emit("COMMITFAIL " + e.toString().replace('\n', ' '));
        }
    }

    private void emit(String line) {
        out.println(line.replaceFirst("^(\\S+)", "$1 " + System.currentTimeMillis()));
        out.flush();
    }

    private static String parts(Collection<TopicPartition> partitions) {
        if (partitions.isEmpty()) {
            return "-";
        }
        TreeSet<Integer> sorted = new TreeSet<>();
        partitions.forEach(tp -> sorted.add(tp.partition()));
        StringBuilder text = new StringBuilder();
        sorted.forEach(p -> text.append(p).append(','));
        text.setLength(text.length() - 1);
        return text.toString();
    }

    private final class Listener implements ConsumerRebalanceListener {
        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            // Still the owner here: what was processed is committed before another member takes over.
            commitPending();
            emit("REVOKED " + consumer.groupMetadata().generationId() + " " + parts(partitions));
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            emit("ASSIGNED " + consumer.groupMetadata().generationId() + " " + consumer.groupMetadata().memberId()
                    + " " + parts(partitions));
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            pending.keySet().removeAll(partitions);
            emit("LOST " + consumer.groupMetadata().generationId() + " " + parts(partitions));
        }
    }
}
