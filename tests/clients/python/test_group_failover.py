"""Consumer groups through failures, with confluent-kafka (librdkafka) against Spate over TCP.

* A member killed with SIGKILL sends no LeaveGroup: the coordinator must notice its silence after
  `session.timeout.ms`, rebalance, and the survivors must pick up its partitions from its last commits,
  losing nothing and re-reading only what it had consumed but not committed (at-least-once).
* Static members (KIP-345, `group.instance.id`) may restart within their session timeout without a
  rebalance: the others keep their assignment, the restarted one gets its old partitions back.
* A broker killed with SIGKILL and restarted on the same data directory must bring back the committed
  offsets, and (as Apache Kafka does, from the group metadata record in __consumer_offsets) the group
  with its members and generation, so that a consumer that kept running resumes without a rebalance.

Members that must be killed run in their own OS process (member.py), reporting what they consume,
commit and get assigned as JSON lines on stdout.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import BrokerProcess, stays_true, wait_until

TIMEOUT = 60.0
MEMBER_SCRIPT = Path(__file__).with_name("member.py")


def create_topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=TIMEOUT)


def produce(bootstrap, topic, values_by_partition):
    """Produces {partition: [value, ...]} with acks=all and waits for every acknowledgement."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for partition, values in values_by_partition.items():
        for value in values:
            producer.produce(topic, value=value.encode(), partition=partition)
    assert producer.flush(TIMEOUT) == 0


class MemberProcess:
    """A member.py subprocess and the events it reported so far (a reader thread collects them, each
    with the monotonic time it arrived)."""

    def __init__(self, name, bootstrap, group, topic, process_ms=0, **settings):
        self.name = name
        consumer = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "heartbeat.interval.ms": 500,
            **settings,
        }
        self.process = subprocess.Popen(
            [sys.executable, str(MEMBER_SCRIPT), json.dumps({"topic": topic, "consumer": consumer, "process_ms": process_ms})],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._events = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            event = json.loads(line)
            event["at"] = time.monotonic()
            with self._lock:
                self._events.append(event)

    def events(self, *kinds):
        with self._lock:
            return [e for e in self._events if not kinds or e["event"] in kinds]

    def assignment(self):
        """The partitions it holds now: its assign/revoke/lost callbacks replayed in order."""
        held = set()
        for event in self.events("assign", "revoke", "lost"):
            if event["event"] == "assign":
                held |= set(event["partitions"])
            else:
                held -= set(event["partitions"])
        return held

    def kill9(self):
        """SIGKILL; returns once the process is gone and everything it wrote has been read."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)


@pytest.fixture
def members():
    """Starts MemberProcess(...)es; kills whatever is left of them when the test ends."""
    started = []

    def start(*args, **kwargs):
        member = MemberProcess(*args, **kwargs)
        started.append(member)
        return member

    try:
        yield start
    finally:
        for member in started:
            member.stop()


def covers(assignments, partitions):
    """Whether the assignments are disjoint, non-empty and together exactly `partitions`."""
    union = set().union(*assignments)
    return all(assignments) and sum(len(a) for a in assignments) == len(union) and union == set(partitions)


def test_killed_member_partitions_move_and_nothing_is_lost(bootstrap, topic_name, members):
    """Three members in their own processes share 6 partitions; one is killed with SIGKILL while
    messages keep coming. Within session timeout + margin the other two hold all 6 partitions, and in
    the end every message was consumed, the only duplicates being messages the killed member had
    consumed at or after its last acknowledged commit on that partition."""
    partitions = range(6)
    session_timeout = 6.0
    create_topic(bootstrap, topic_name, len(partitions))
    produced = {p: [f"before-{p}-{i}" for i in range(10)] for p in partitions}
    produce(bootstrap, topic_name, produced)

    group = f"failover-{uuid.uuid4().hex[:8]}"
    settings = {"session.timeout.ms": int(session_timeout * 1000)}
    # The victim-to-be takes 30 ms over each message before committing it, so that it is likely to die
    # holding a message it read but did not commit.
    trio = [
        members(f"member-{i}", bootstrap, group, topic_name, process_ms=30 if i == 0 else 0, **settings)
        for i in range(3)
    ]
    wait_until(
        lambda: covers([m.assignment() for m in trio], partitions),
        "three members with disjoint assignments covering all 6 partitions",
        timeout=TIMEOUT,
    )
    assert sorted(len(m.assignment()) for m in trio) == [2, 2, 2], [m.assignment() for m in trio]
    victim, survivors = trio[0], trio[1:]
    victim_partitions = victim.assignment()

    # Messages keep coming while the victim dies: a producer thread, one message per partition every
    # 20 ms, for about 3 s in all.
    during = {p: [] for p in partitions}
    stop_producing = threading.Event()
    errors = []

    def keep_producing():
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
        try:
            for i in range(150):
                if stop_producing.is_set():
                    break
                for p in partitions:
                    value = f"during-{p}-{i}"
                    producer.produce(topic_name, value=value.encode(), partition=p)
                    during[p].append(value)
                producer.poll(0)
                time.sleep(0.02)
            if producer.flush(TIMEOUT) != 0:
                errors.append("the producer did not deliver everything")
        except Exception as error:  # reported by the test thread
            errors.append(repr(error))

    producer_thread = threading.Thread(target=keep_producing, daemon=True)
    producer_thread.start()
    try:
        # Kill the victim once it has consumed some of the new messages (so it dies mid-stream), at a
        # moment it is processing one.
        def mid_stream():
            consumed = [e["value"] for e in victim.events("consumed")]
            busy = victim.events()[-1]["event"] == "consumed"
            return busy and sum(value.startswith("during") for value in consumed) >= 10

        wait_until(mid_stream, "the victim is processing messages produced during the test", timeout=TIMEOUT,
                   interval=0.002)
        victim.kill9()
        killed_at = time.monotonic()
    except BaseException:
        stop_producing.set()
        raise
    finally:
        producer_thread.join(timeout=TIMEOUT)
    assert not errors, errors

    # The survivors take over the victim's partitions within the session timeout plus a margin (the
    # coordinator's expiry check, a heartbeat interval, a rejoin round).
    def taken_over():
        return covers([m.assignment() for m in survivors], partitions) and all(
            e["at"] > killed_at for m in survivors for e in m.events("assign")[-1:]
        )

    wait_until(taken_over, "the two survivors hold all 6 partitions after a rebalance", timeout=session_timeout + 10)
    took = max(m.events("assign")[-1]["at"] for m in survivors) - killed_at
    assert took <= session_timeout + 10, took
    assert victim_partitions <= set().union(*(m.assignment() for m in survivors))

    # Every produced message gets consumed.
    expected = {(p, v) for p in partitions for v in produced[p] + during[p]}

    def consumed_values():
        return {(e["partition"], e["value"]) for m in trio for e in m.events("consumed")}

    wait_until(lambda: expected <= consumed_values(), "every produced message was consumed", timeout=TIMEOUT)
    missing = expected - consumed_values()
    assert not missing, sorted(missing)[:20]
    assert consumed_values() <= expected, sorted(consumed_values() - expected)[:20]

    # No commit of a surviving member failed (that would make its own messages fair game for duplicates).
    failures = [(m.name, e) for m in trio for e in m.events("commit_failed")]
    assert not failures, failures

    # Duplicates: only messages the victim consumed at or after its last acknowledged commit of the
    # partition, then read again (once) by a survivor.
    last_ack = {}
    for event in victim.events("committed"):
        last_ack[event["partition"]] = max(last_ack.get(event["partition"], 0), event["offset"])
    readings = {}  # (partition, offset) -> [(member name, value), ...] in the order they were reported
    for member in trio:
        for event in member.events("consumed"):
            readings.setdefault((event["partition"], event["offset"]), []).append((member.name, event["value"]))
    # A survivor only gets a victim's partition after the victim died, so the victim's reading of a
    # duplicate is the first one.
    for (partition, offset), reads in readings.items():
        assert len({value for _, value in reads}) == 1, f"offset {partition}/{offset} read as different values: {reads}"
        if len(reads) == 1:
            continue
        readers = sorted(name for name, _ in reads)
        assert len(reads) == 2 and victim.name in readers, f"{partition}/{offset} read more than once: {reads}"
        assert offset >= last_ack.get(partition, 0), (
            f"{partition}/{offset} was re-read although the victim's commit up to {last_ack.get(partition)} "
            f"was acknowledged: {reads}"
        )
    duplicates = [key for key, reads in readings.items() if len(reads) > 1]
    # The victim handled one message at a time (consume, commit, next): at most one was read and not
    # yet committed when it died.
    assert len(duplicates) <= 1, sorted(duplicates)


def test_static_member_restart_causes_no_rebalance(bootstrap, topic_name, members):
    """Two static members (group.instance.id), A and B. Each in turn is killed with SIGKILL (no
    LeaveGroup) and restarted with the same instance id within its session timeout: the other sees no
    revoke/assign, the restarted one gets its old partitions back and resumes from its commits, and
    nothing changes once the old sessions' timeouts have passed. Restarting both covers the group
    leader's restart whichever of the two leads. Then a dynamic member joins, which must rebalance the
    others (the control showing the checks above can see a rebalance)."""
    partitions = range(4)
    session_timeout = 10.0
    create_topic(bootstrap, topic_name, len(partitions))
    group = f"static-{uuid.uuid4().hex[:8]}"
    tag = uuid.uuid4().hex[:8]

    def static(name):
        settings = {"group.instance.id": f"{name}-{tag}", "session.timeout.ms": int(session_timeout * 1000)}
        return members(f"static-{name}", bootstrap, group, topic_name, **settings)

    def callbacks(member):
        return [e["event"] for e in member.events("assign", "revoke", "lost")]

    a, b = static("a"), static("b")
    wait_until(
        lambda: covers([a.assignment(), b.assignment()], partitions),
        "two static members with disjoint assignments covering all 4 partitions",
        timeout=TIMEOUT,
    )
    owned = {"a": a.assignment(), "b": b.assignment()}
    # A message per partition, consumed and committed by its owner: the group works and is stable.
    produce(bootstrap, topic_name, {p: [f"first-{p}"] for p in partitions})
    wait_until(
        lambda: {e["partition"] for m in (a, b) for e in m.events("committed")} == set(partitions),
        "both members consumed and committed their first messages",
        timeout=TIMEOUT,
    )
    b_callbacks = callbacks(b)
    assert b_callbacks[-1] == "assign", b_callbacks

    def restart(old, name):
        old.kill9()
        killed_at = time.monotonic()
        new = static(name)
        wait_until(lambda: new.assignment(), f"the restarted static member {name} got an assignment", timeout=TIMEOUT)
        assert time.monotonic() - killed_at < session_timeout, f"{name} did not restart within the session timeout"
        assert new.assignment() == owned[name], (new.assignment(), owned)
        return new, killed_at

    a2, _ = restart(a, "a")
    assert callbacks(b) == b_callbacks, "B was rebalanced when A restarted"
    b2, last_kill = restart(b, "b")
    assert callbacks(a2) == ["assign"], "the restarted A was rebalanced when B restarted"

    def undisturbed():
        return callbacks(a2) == ["assign"] and callbacks(b2) == ["assign"]

    # New messages reach their owners, who resume after their predecessors' commits...
    produce(bootstrap, topic_name, {p: [f"second-{p}"] for p in partitions})
    wait_until(
        lambda: {(e["partition"], e["value"]) for m in (a2, b2) for e in m.events("consumed")}
        >= {(p, f"second-{p}") for p in partitions},
        "the restarted members consumed the messages produced after the restarts",
        timeout=TIMEOUT,
    )
    for member, name in ((a2, "a"), (b2, "b")):
        assert {e["partition"] for e in member.events("consumed")} == owned[name]
        assert sorted(e["value"] for e in member.events("consumed")) == sorted(f"second-{p}" for p in owned[name])
    # ...and nothing rebalances up to the old members' session timeouts and a margin past them.
    remaining = last_kill + session_timeout + 3 - time.monotonic()
    stays_true(undisturbed, "no revoke/assign after the static members restarted", max(remaining, 0))

    # Control: a dynamic member joining does rebalance them (so `undisturbed` could have failed).
    c = members("dynamic-c", bootstrap, group, topic_name, **{"session.timeout.ms": int(session_timeout * 1000)})
    wait_until(lambda: not undisturbed(), "the static members were rebalanced when a dynamic one joined", timeout=TIMEOUT)
    wait_until(
        lambda: covers([a2.assignment(), b2.assignment(), c.assignment()], partitions),
        "the three members share all 4 partitions",
        timeout=TIMEOUT,
    )


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test's own (it gets killed and restarted), stopped at the end."""
    binary = os.environ.get("SPATE_BIN")
    if not binary:
        pytest.fail("SPATE_BIN is not set: run these through tests/clients/run.sh, or point it at target/debug/spate")
    broker = BrokerProcess(binary, tmp_path / "data", tmp_path / "broker.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        print(f"-- broker log ({broker.log_path}):\n{broker.log_tail(60)}")


def test_broker_kill_9_restart_restores_offsets_and_group(own_broker, topic_name):
    """A consumer commits after each message; the broker is killed with SIGKILL right after the last
    acknowledged commit and restarted on the same port and data directory. The committed offsets come
    back (AdminClient and Consumer.committed), the consumer that kept running resumes exactly after them,
    a new member of the group later resumes exactly from its commits, and, as with Apache Kafka (whose
    coordinator reloads the group metadata record from __consumer_offsets and lets members keep
    heartbeating with their member id and generation), the group and its member survive: the running
    consumer keeps its member id and is not revoked."""
    bootstrap = own_broker.bootstrap
    partitions = range(3)
    create_topic(bootstrap, topic_name, len(partitions))
    produce(bootstrap, topic_name, {p: [f"before-{p}-{i}" for i in range(10)] for p in partitions})
    group = f"restart-{uuid.uuid4().hex[:8]}"
    callbacks = []  # (event, partitions, monotonic time)

    def recorder(event):
        def record(consumer, tps):
            callbacks.append((event, sorted(tp.partition for tp in tps), time.monotonic()))

        return record

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # Long enough for a debug broker to restart; Kafka's default is 45 s.
            "session.timeout.ms": 30000,
            "heartbeat.interval.ms": 500,
            "reconnect.backoff.max.ms": 500,
        }
    )
    consumer.subscribe([topic_name], on_assign=recorder("assign"), on_revoke=recorder("revoke"),
                       on_lost=recorder("lost"))
    try:
        consumed = {}  # (partition, offset) -> value

        def consume_until(count):
            def step():
                message = consumer.poll(0.1)
                if message is not None and message.error() is None:
                    key = (message.partition(), message.offset())
                    assert key not in consumed, f"{key} delivered twice"
                    consumed[key] = message.value().decode()
                    result = consumer.commit(message=message, asynchronous=False)
                    assert all(tp.error is None for tp in result), result
                return len(consumed) >= count

            return step

        wait_until(consume_until(30), "the consumer read and committed the first 30 messages", timeout=TIMEOUT)
        member_id = consumer.memberid()
        assert member_id, "the consumer has no member id"
        assert callbacks and callbacks[-1][:2] == ("assign", list(partitions)), callbacks
        callbacks_before = len(callbacks)

        own_broker.kill9()
        own_broker.start()
        restarted_at = time.monotonic()

        # The committed offsets come back, through the admin API...
        admin = AdminClient({"bootstrap.servers": bootstrap})
        fetched = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=TIMEOUT)
        offsets = {tp.partition: tp.offset for tp in fetched[group].result().topic_partitions}
        assert offsets == {p: 10 for p in partitions}, offsets
        # ...and to the consumer, which kept running (polling keeps its callbacks served).
        committed = consumer.committed([TopicPartition(topic_name, p) for p in partitions], timeout=TIMEOUT)
        assert [tp.offset for tp in committed] == [10] * len(partitions), committed

        # The running consumer resumes where it was: exactly the new messages, none twice.
        produce(bootstrap, topic_name, {p: [f"after-{p}-{i}" for i in range(5)] for p in partitions})
        wait_until(consume_until(45), "the consumer read the messages produced after the restart", timeout=TIMEOUT)
        later = {key: value for key, value in consumed.items() if key[1] >= 10}
        assert sorted(later.values()) == sorted(f"after-{p}-{i}" for p in partitions for i in range(5)), later
        assert all(value == f"after-{p}-{o - 10}" for (p, o), value in later.items()), later

        # The group came back with its member: same member id, stable, holding every partition.
        admin = AdminClient({"bootstrap.servers": bootstrap})

        def described_with_member():
            consumer.poll(0.05)
            description = admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result()
            return description if description.members and description.state == ConsumerGroupState.STABLE else None

        description = wait_until(described_with_member, "the group is described with a member again", timeout=TIMEOUT)
        # Whatever happened to the membership, the consumer holds every partition again.
        assert {tp.partition for tp in consumer.assignment()} == set(partitions)
        group_problems = []
        since_restart = callbacks[callbacks_before:]
        if since_restart:
            group_problems.append(
                f"the consumer's assignment was revoked/lost and reassigned after the broker restart "
                f"({[(e, p, round(t - restarted_at, 2)) for e, p, t in since_restart]} s after restart)"
            )
        if consumer.memberid() != member_id:
            group_problems.append(f"the consumer's member id changed from {member_id} to {consumer.memberid()}")
        if [m.member_id for m in description.members] != [member_id]:
            group_problems.append(f"the group's members after the restart: {[m.member_id for m in description.members]}")
    finally:
        consumer.close()

    # A new member of the group resumes exactly from the commits: only messages produced since.
    produce(bootstrap, topic_name, {p: [f"later-{p}-{i}" for i in range(3)] for p in partitions})
    resumed = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    resumed.subscribe([topic_name])
    try:
        seen = {}

        def resumed_all():
            message = resumed.poll(0.1)
            if message is not None and message.error() is None:
                seen[(message.partition(), message.offset())] = message.value().decode()
            return len(seen) >= 9

        wait_until(resumed_all, "the new member read the messages produced after the last commits", timeout=TIMEOUT)
        assert sorted(seen) == sorted((p, o) for p in partitions for o in range(15, 18)), sorted(seen)
        assert all(value == f"later-{p}-{o - 15}" for (p, o), value in seen.items()), seen
    finally:
        resumed.close()

    # The group (members, generation) surviving the restart, checked last so that the offset checks
    # above run regardless. This needs the coordinator to persist group metadata (Kafka's
    # GroupMetadata record) and load it on startup; a broker that forgets the group answers the
    # consumer's next heartbeat with UNKNOWN_MEMBER_ID, and librdkafka calls on_lost and rejoins under a
    # new member id.
    assert not group_problems, "the group did not survive the broker restart: " + "; ".join(group_problems)
