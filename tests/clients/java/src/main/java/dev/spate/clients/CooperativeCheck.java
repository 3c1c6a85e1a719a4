package dev.spate.clients;

import static dev.spate.clients.GroupChecks.PARTITIONS;
import static dev.spate.clients.GroupChecks.TIMEOUT_SECONDS;
import static dev.spate.clients.GroupChecks.balanced;
import static dev.spate.clients.GroupChecks.check;
import static dev.spate.clients.GroupChecks.waitUntil;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.common.GroupState;

/**
 * Incremental (cooperative) rebalancing of a classic group, each member in its own JVM with the
 * CooperativeStickyAssignor: two members share six partitions; a third joins while records keep
 * coming. The two keep every partition they do not give up — never revoked, never lost — and keep
 * consuming them through the rebalance: what is produced to a retained partition during the rebalance
 * is read by its owner, once. The partitions given up are revoked (committed first) and go to the
 * newcomer; the rebalance completes (two rounds) with disjoint assignments covering every partition,
 * and no record is read twice.
 */
final class CooperativeCheck {
    private static final int SESSION_TIMEOUT_MS = 10_000;

    private CooperativeCheck() {}

    static void run(String bootstrap, Admin admin) throws Exception {
        String topic = "java-group-coop-" + System.nanoTime();
        String group = topic + "-g";
        GroupChecks.createTopic(admin, topic);
        List<MemberProcess> members = new ArrayList<>();
        try (Feeder feeder = new Feeder(bootstrap, topic, PARTITIONS)) {
            feeder.produceNow("before", 20);
            for (int i = 1; i <= 2; i++) {
                members.add(MemberProcess.start("coop-m" + i, bootstrap, group, topic, "cooperative-sticky",
                        SESSION_TIMEOUT_MS));
            }
            List<MemberProcess> firstTwo = List.copyOf(members);
            waitUntil("two cooperative members with disjoint assignments covering all " + PARTITIONS + " partitions",
                    60_000, () -> balanced(firstTwo), () -> MemberProcess.describe(members));
            Map<String, Set<Integer>> before = new HashMap<>();
            Map<String, Integer> eventsBefore = new HashMap<>();
            for (MemberProcess member : firstTwo) {
                before.put(member.name, member.assignment());
                eventsBefore.put(member.name, member.events().size());
            }
            int generationBefore = firstTwo.get(0).generation();

            feeder.start("during", 10);
            MemberProcess third = MemberProcess.start("coop-m3", bootstrap, group, topic, "cooperative-sticky",
                    SESSION_TIMEOUT_MS);
            members.add(third);
            waitUntil("the third member gets its share: three disjoint assignments covering all " + PARTITIONS
                    + " partitions", 60_000, () -> balanced(members), () -> MemberProcess.describe(members));
            for (MemberProcess member : members) {
                check(member.assignment().size() == 2, "cooperative-sticky over 6 partitions and 3 members gave "
                        + member.name + " " + member.assignment() + MemberProcess.describe(members));
            }
            // (Read now: closing the members later makes more generations.)
            int generationAfter = third.generation();
            check(generationAfter >= generationBefore + 2, "generation " + generationBefore + " → "
                    + generationAfter + ": an incremental rebalance takes two rounds (revoke, then assign)"
                    + MemberProcess.describe(members));

            // The retained partitions: never revoked or lost; the given-up ones revoked and handed on.
            Map<String, Set<Integer>> retained = new HashMap<>();
            Set<Integer> handedOver = new TreeSet<>();
            for (MemberProcess member : firstTwo) {
                Set<Integer> now = member.assignment();
                Set<Integer> had = before.get(member.name);
                check(had.containsAll(now), member.name + " had " + had + " and now has " + now
                        + ": a member that gives partitions up gains none (sticky)");
                Set<Integer> revoked = new TreeSet<>();
                List<MemberProcess.Event> events = member.events();
                for (MemberProcess.Event event : events.subList(eventsBefore.get(member.name), events.size())) {
                    check(!event.kind().equals("LOST"), member.name + ": onPartitionsLost " + event);
                    check(!event.kind().equals("ASSIGNED") || event.partitions().isEmpty(),
                            member.name + " was given partitions while giving some up: " + event);
                    if (event.kind().equals("REVOKED")) {
                        for (int p : event.partitions()) {
                            check(!now.contains(p), member.name + ": partition " + p
                                    + " was revoked although it stays with it: " + event);
                        }
                        revoked.addAll(event.partitions());
                    }
                }
                Set<Integer> givenUp = new TreeSet<>(had);
                givenUp.removeAll(now);
                check(revoked.equals(givenUp), member.name + " revoked " + revoked + ", gave up " + givenUp);
                retained.put(member.name, now);
                handedOver.addAll(givenUp);
            }
            check(third.assignment().equals(handedOver), third.name + " has " + third.assignment()
                    + ", the others gave up " + handedOver);
            for (MemberProcess member : members) {
                for (MemberProcess.Event event : member.events()) {
                    check(!event.kind().equals("LOST"), member.name + ": onPartitionsLost " + event);
                }
            }
            long joinedAt = third.subscribedAt();
            long settledAt = third.events().stream().filter(e -> e.kind().equals("ASSIGNED") && !e.partitions().isEmpty())
                    .mapToLong(MemberProcess.Event::atMillis).max().orElse(-1);
            check(joinedAt > 0 && settledAt > joinedAt, "third member subscribed at " + joinedAt + ", assigned at " + settledAt);

            ConsumerGroupDescription description = admin.describeConsumerGroups(List.of(group)).describedGroups()
                    .get(group).get(TIMEOUT_SECONDS, TimeUnit.SECONDS);
            check(description.groupState() == GroupState.STABLE && description.members().size() == 3
                            && description.partitionAssignor().equals("cooperative-sticky"),
                    "describeConsumerGroups: " + description + ", want Stable, 3 members, assignor cooperative-sticky");

            long feedUntil = System.currentTimeMillis() + 1_000;
            waitUntil("a second of producing", 5_000, () -> System.currentTimeMillis() >= feedUntil, () -> "");
            feeder.stop();
            Map<String, Feeder.Acked> acked = feeder.acked();
            waitUntil("every acknowledged record consumed", TIMEOUT_SECONDS * 1000,
                    () -> GroupChecks.consumedKeys(members).containsAll(acked.keySet()),
                    () -> GroupChecks.missing(acked, members) + MemberProcess.describe(members));

            Map<String, List<MemberProcess.Consumed>> reads = new HashMap<>();
            for (MemberProcess member : members) {
                for (MemberProcess.Consumed c : member.consumed()) {
                    reads.computeIfAbsent(c.partition() + "@" + c.offset(), k -> new ArrayList<>()).add(c);
                }
            }
            check(reads.keySet().equals(acked.keySet()), "consumed " + reads.size() + " distinct records, acknowledged "
                    + acked.size());
            for (Map.Entry<String, List<MemberProcess.Consumed>> entry : reads.entrySet()) {
                Feeder.Acked want = acked.get(entry.getKey());
                check(entry.getValue().size() == 1, "partition@offset " + entry.getKey() + " read more than once: "
                        + entry.getValue());
                check(entry.getValue().get(0).value().equals(want.value()), "partition@offset " + entry.getKey()
                        + ": read " + entry.getValue().get(0).value() + ", produced " + want.value());
            }
            // Produced during the rebalance to a retained partition: read by its owner; and each owner kept
            // reading its retained partitions during the rebalance.
            int producedDuring = 0;
            Map<String, Integer> readDuring = new HashMap<>();
            for (Feeder.Acked a : acked.values()) {
                if (a.sentAt() < joinedAt || a.sentAt() > settledAt) {
                    continue;
                }
                for (Map.Entry<String, Set<Integer>> owner : retained.entrySet()) {
                    if (owner.getValue().contains(a.partition())) {
                        MemberProcess.Consumed read = reads.get(a.partition() + "@" + a.offset()).get(0);
                        check(read.member().equals(owner.getKey()), "partition " + a.partition() + " offset " + a.offset()
                                + ", produced during the rebalance, was read by " + read.member() + ", not by "
                                + owner.getKey() + " which kept the partition");
                        producedDuring++;
                    }
                }
            }
            for (MemberProcess member : firstTwo) {
                long n = member.consumed().stream().filter(c -> retained.get(member.name).contains(c.partition())
                        && c.atMillis() >= joinedAt && c.atMillis() <= settledAt).count();
                readDuring.put(member.name, (int) n);
                check(n > 0, member.name + " read nothing from its retained partitions " + retained.get(member.name)
                        + " during the rebalance (" + joinedAt + ".." + settledAt + ")" + MemberProcess.describe(members));
            }
            check(producedDuring > 0, "nothing was produced to a retained partition during the rebalance ("
                    + joinedAt + ".." + settledAt + ")");

            for (MemberProcess member : members) {
                member.close(20_000);
                check(member.problems().isEmpty(), member.name + " reported " + member.problems());
            }
            System.out.printf("java: groups: cooperative-sticky: a third member joined; %s kept %s, %d records produced"
                            + " to them during the %d ms rebalance (generation %d → %d), read during it %s; %s moved"
                            + " to the newcomer; %d records, each read once (%d commits deferred by the client while"
                            + " rejoining)%n",
                    firstTwo.get(0).name + "/" + firstTwo.get(1).name, retained, producedDuring, settledAt - joinedAt,
                    generationBefore, generationAfter, readDuring, handedOver, acked.size(),
                    members.stream().mapToInt(MemberProcess::commitsDeferred).sum());
        } finally {
            members.forEach(MemberProcess::close);
        }
    }
}
