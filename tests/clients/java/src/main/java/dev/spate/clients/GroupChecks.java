package dev.spate.clients;

import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;

/**
 * Classic consumer groups with kafka-clients, each member in its own JVM ({@link GroupMember}):
 *
 * <ul>
 *   <li>{@link #killedMember}: three range-assigned members over six partitions get disjoint, covering
 *       assignments; one is killed with SIGKILL while records keep coming; within the session timeout
 *       (plus a margin) its partitions move to the two others, and with commits after processing every
 *       record is consumed, duplicates only from the killed member's uncommitted tail.
 *   <li>AdminClient on that group: listGroups (listConsumerGroups is deprecated for removal in 4.x), describeConsumerGroups (state,
 *       members, client ids, assignments, assignor, coordinator) and listConsumerGroupOffsets, while
 *       Stable and again once Empty.
 *   <li>{@link CooperativeCheck}: incremental rebalancing with the CooperativeStickyAssignor.
 * </ul>
 */
final class GroupChecks {
    static final int PARTITIONS = 6;
    static final long TIMEOUT_SECONDS = 30;
    static final int SESSION_TIMEOUT_MS = 6_000;
    /** How long after the session timeout the killed member's partitions may take to move. */
    static final long MOVE_MARGIN_MS = 12_000;

    private GroupChecks() {}

    static void run(String bootstrap, Admin admin, Node node) throws Exception {
        killedMember(bootstrap, admin, node);
        CooperativeCheck.run(bootstrap, admin);
    }

    private static void killedMember(String bootstrap, Admin admin, Node node) throws Exception {
        String topic = "java-group-kill-" + System.nanoTime();
        String group = topic + "-g";
        createTopic(admin, topic);
        List<MemberProcess> members = new ArrayList<>();
        try (Feeder feeder = new Feeder(bootstrap, topic, PARTITIONS)) {
            feeder.produceNow("before", 30);
            for (int i = 0; i < 3; i++) {
                members.add(MemberProcess.start("kill-m" + i, bootstrap, group, topic, "range", SESSION_TIMEOUT_MS));
            }
            waitUntil("three members with one generation and disjoint assignments covering all " + PARTITIONS
                    + " partitions", 60_000, () -> balanced(members), () -> MemberProcess.describe(members));
            int generation = members.get(0).generation();
            for (MemberProcess member : members) {
                check(member.assignment().size() == 2, "range over 6 partitions and 3 members gave "
                        + member.name + " " + member.assignment() + MemberProcess.describe(members));
            }

            feeder.start("during", 10);
            MemberProcess victim = members.get(1);
            List<MemberProcess> survivors = List.of(members.get(0), members.get(2));
            // Kill it in the middle of its work: once it has committed, while records keep coming.
            waitUntil(victim.name + " consumes and commits", TIMEOUT_SECONDS * 1000,
                    () -> !victim.committed().isEmpty() && victim.consumed().size() > 60, victim::toString);
            Set<Integer> orphaned = victim.assignment();
            long killedAt = System.currentTimeMillis();
            int status = victim.kill();
            check(status == 128 + 9, victim.name + " exit status " + status + " after destroyForcibly, want 137 (SIGKILL)");

            long moveDeadline = SESSION_TIMEOUT_MS + MOVE_MARGIN_MS;
            waitUntil("the killed member's partitions " + orphaned + " move to the two others within "
                            + moveDeadline + " ms", moveDeadline, () -> balanced(survivors),
                    () -> MemberProcess.describe(members));
            long moved = System.currentTimeMillis() - killedAt;
            check(survivors.get(0).generation() > generation, "no new generation after the kill");
            for (MemberProcess member : survivors) {
                check(member.assignment().size() == 3, "range over 6 partitions and 2 members gave " + member.name
                        + " " + member.assignment() + MemberProcess.describe(members));
            }
            // Keep producing a moment after the move, then drain.
            long feedUntil = System.currentTimeMillis() + 1_000;
            waitUntil("a second of producing", 5_000, () -> System.currentTimeMillis() >= feedUntil, () -> "");
            feeder.stop();

            Map<String, Feeder.Acked> acked = feeder.acked();
            Map<Integer, Long> ends = feeder.ends();
            waitUntil("every acknowledged record consumed", TIMEOUT_SECONDS * 1000,
                    () -> consumedKeys(members).containsAll(acked.keySet()), () -> missing(acked, members)
                            + MemberProcess.describe(members));
            waitUntil("the survivors commit up to the end of every partition " + ends, TIMEOUT_SECONDS * 1000,
                    () -> committedBy(survivors).equals(ends), () -> "committed " + committedBy(survivors)
                            + MemberProcess.describe(members));

            int tail = checkDuplicates(acked, members, victim);
            adminWhileStable(admin, node, group, topic, survivors, ends);

            for (MemberProcess member : survivors) {
                member.close(20_000);
                check(member.problems().isEmpty(), member.name + " reported " + member.problems());
            }
            adminWhenEmpty(admin, group, topic, ends);
            System.out.printf("java: groups: 3 members (pids %d %d %d), %s killed with SIGKILL; its partitions %s moved"
                            + " in %d ms (session.timeout.ms %d); %d records consumed, %d re-read from its uncommitted tail%n",
                    members.get(0).pid(), victim.pid(), members.get(2).pid(), victim.name, orphaned, moved,
                    SESSION_TIMEOUT_MS, acked.size(), tail);
        } finally {
            members.forEach(MemberProcess::close);
        }
    }

    /**
     * Every record read by more than one member was read first by the victim, at or past the last offset
     * it committed for that partition; each value matches what was produced.
     */
    private static int checkDuplicates(Map<String, Feeder.Acked> acked, List<MemberProcess> members,
                                       MemberProcess victim) {
        Map<String, List<MemberProcess.Consumed>> byKey = new HashMap<>();
        for (MemberProcess member : members) {
            for (MemberProcess.Consumed c : member.consumed()) {
                byKey.computeIfAbsent(c.partition() + "@" + c.offset(), k -> new ArrayList<>()).add(c);
            }
        }
        check(acked.keySet().equals(byKey.keySet()), "consumed records " + byKey.size() + " vs acknowledged "
                + acked.size() + ": " + missing(acked, members));
        Map<Integer, Long> victimCommitted = victim.committed();
        int tail = 0;
        for (Map.Entry<String, List<MemberProcess.Consumed>> entry : byKey.entrySet()) {
            Feeder.Acked want = acked.get(entry.getKey());
            List<MemberProcess.Consumed> reads = entry.getValue();
            reads.sort((a, b) -> Long.compare(a.atMillis(), b.atMillis()));
            for (MemberProcess.Consumed c : reads) {
                check(c.value().equals(want.value()), "partition " + c.partition() + " offset " + c.offset() + ": "
                        + c.member() + " read " + c.value() + ", produced " + want.value());
            }
            if (reads.size() > 1) {
                long committed = victimCommitted.getOrDefault(want.partition(), 0L);
                boolean fromTail = reads.size() == 2 && reads.get(0).member().equals(victim.name)
                        && !reads.get(1).member().equals(victim.name) && want.offset() >= committed;
                check(fromTail, "partition " + want.partition() + " offset " + want.offset() + " consumed " + reads.size()
                        + " times " + reads + "; only the killed member's uncommitted tail (its commit there: "
                        + committed + ") may be read twice");
                tail++;
            }
        }
        return tail;
    }

    private static void adminWhileStable(Admin admin, Node node, String group, String topic,
                                         List<MemberProcess> survivors, Map<Integer, Long> ends) throws Exception {
        Collection<GroupListing> listed = admin.listGroups(ListGroupsOptions.forConsumerGroups()).all()
                .get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        GroupListing listing = listed.stream().filter(g -> g.groupId().equals(group)).findFirst().orElse(null);
        check(listing != null, "listGroups(consumer) lacks " + group + ": " + listed);
        check(listing.groupState().equals(java.util.Optional.of(GroupState.STABLE))
                        && listing.type().equals(java.util.Optional.of(GroupType.CLASSIC))
                        && listing.protocol().equals("consumer") && !listing.isSimpleConsumerGroup(),
                "listGroups: " + listing + ", want a Stable classic group of protocol type consumer");

        ConsumerGroupDescription description = admin.describeConsumerGroups(List.of(group)).describedGroups()
                .get(group).get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        check(description.groupState() == GroupState.STABLE && description.type() == GroupType.CLASSIC
                        && description.partitionAssignor().equals("range") && !description.isSimpleConsumerGroup(),
                "describeConsumerGroups: " + description + ", want Stable, classic, assignor range");
        check(description.coordinator() != null && description.coordinator().id() == node.id(),
                "describeConsumerGroups: coordinator " + description.coordinator() + ", want " + node);
        Map<String, Set<Integer>> want = new TreeMap<>();
        Map<String, String> clientIds = new TreeMap<>();
        for (MemberProcess member : survivors) {
            want.put(member.memberId(), member.assignment());
            clientIds.put(member.memberId(), member.name);
        }
        Map<String, Set<Integer>> got = new TreeMap<>();
        for (MemberDescription member : description.members()) {
            Set<Integer> parts = new TreeSet<>();
            for (TopicPartition tp : member.assignment().topicPartitions()) {
                check(tp.topic().equals(topic), "describeConsumerGroups: member " + member.consumerId() + " has " + tp);
                parts.add(tp.partition());
            }
            got.put(member.consumerId(), parts);
            // Kafka reports the address the member connected from, as "/" + IP.
            check(member.clientId().equals(clientIds.get(member.consumerId())) && member.host().equals("/" + node.host()),
                    "describeConsumerGroups: member " + member + ", want client id " + clientIds.get(member.consumerId())
                            + " and host /" + node.host());
        }
        check(got.equals(want), "describeConsumerGroups: members and assignments " + got + ", the members say " + want);

        checkGroupOffsets(admin, group, topic, ends);
    }

    private static void adminWhenEmpty(Admin admin, String group, String topic, Map<Integer, Long> ends) throws Exception {
        ConsumerGroupDescription description = admin.describeConsumerGroups(List.of(group)).describedGroups()
                .get(group).get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        check(description.groupState() == GroupState.EMPTY && description.members().isEmpty(),
                "describeConsumerGroups after every member closed: " + description + ", want Empty with no members");
        Collection<GroupListing> empty = admin.listGroups(ListGroupsOptions.forConsumerGroups()
                .inGroupStates(Set.of(GroupState.EMPTY))).all().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        check(empty.stream().anyMatch(g -> g.groupId().equals(group)), "listGroups(Empty) lacks " + group + ": " + empty);
        Collection<GroupListing> stable = admin.listGroups(ListGroupsOptions.forConsumerGroups()
                .inGroupStates(Set.of(GroupState.STABLE))).all().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        check(stable.stream().noneMatch(g -> g.groupId().equals(group)), "listGroups(Stable) has the empty " + group);
        checkGroupOffsets(admin, group, topic, ends);
    }

    private static void checkGroupOffsets(Admin admin, String group, String topic, Map<Integer, Long> ends)
            throws Exception {
        Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                .partitionsToOffsetAndMetadata().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
        Map<Integer, Long> got = new TreeMap<>();
        offsets.forEach((tp, offset) -> {
            check(tp.topic().equals(topic) && offset != null, "listConsumerGroupOffsets: " + tp + " = " + offset);
            got.put(tp.partition(), offset.offset());
        });
        check(got.equals(ends), "listConsumerGroupOffsets " + group + " = " + got + ", want the end offsets " + ends);
    }

    /** All members have a non-empty assignment of one generation; together disjoint and covering. */
    static boolean balanced(List<MemberProcess> members) {
        Set<Integer> union = new HashSet<>();
        int total = 0;
        int generation = members.get(0).generation();
        for (MemberProcess member : members) {
            Set<Integer> parts = member.assignment();
            if (parts.isEmpty() || member.generation() != generation || !member.alive()) {
                return false;
            }
            union.addAll(parts);
            total += parts.size();
        }
        return total == PARTITIONS && union.size() == PARTITIONS;
    }

    static Set<String> consumedKeys(List<MemberProcess> members) {
        Set<String> keys = new HashSet<>();
        for (MemberProcess member : members) {
            for (MemberProcess.Consumed c : member.consumed()) {
                keys.add(c.partition() + "@" + c.offset());
            }
        }
        return keys;
    }

    static String missing(Map<String, Feeder.Acked> acked, List<MemberProcess> members) {
        Set<String> missing = new TreeSet<>(acked.keySet());
        missing.removeAll(consumedKeys(members));
        List<String> some = new ArrayList<>(missing).subList(0, Math.min(10, missing.size()));
        return missing.size() + " acknowledged records not consumed (partition@offset), e.g. " + some;
    }

    /** Partition → the highest offset any of these members committed. */
    static Map<Integer, Long> committedBy(List<MemberProcess> members) {
        Map<Integer, Long> all = new TreeMap<>();
        for (MemberProcess member : members) {
            member.committed().forEach((p, o) -> all.merge(p, o, Math::max));
        }
        return all;
    }

    static void createTopic(Admin admin, String topic) throws Exception {
        admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
    }

    static void waitUntil(String what, long timeoutMs, BooleanSupplier condition, Supplier<String> state)
            throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (!condition.getAsBoolean()) {
            check(System.nanoTime() < deadline, "not within " + timeoutMs + " ms: " + what + "; " + state.get());
            Thread.sleep(50);
        }
    }

    static void check(boolean condition, String message) {
        SpateClientCheck.check(condition, message);
    }
}
