"""confluent-kafka consumer groups against Spate: JoinGroup/SyncGroup/Heartbeat/LeaveGroup and
committed offsets (OffsetCommit/OffsetFetch stored in __consumer_offsets).

Three consumers share a 6-partition topic: their assignments are disjoint and cover every partition;
they commit after processing; a new consumer of the same group resumes exactly where they committed.
A consumer using assign() outside any group commits and reads its offsets back.
"""

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import wait_until

PARTITIONS = 6
TIMEOUT = 60.0


def create_topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=TIMEOUT)


def produce(bootstrap, topic, per_partition, tag):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for partition in range(PARTITIONS):
        for i in range(per_partition):
            producer.produce(topic, value=f"{tag}-{partition}-{i}".encode(), partition=partition)
    assert producer.flush(TIMEOUT) == 0


def group_consumer(bootstrap, group):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
        }
    )


def assigned(consumer):
    return {(tp.topic, tp.partition) for tp in consumer.assignment()}


def test_three_consumers_share_partitions_and_resume_from_commits(bootstrap, topic_name):
    create_topic(bootstrap, topic_name, PARTITIONS)
    produce(bootstrap, topic_name, 10, "first")
    group = f"group-{uuid.uuid4().hex[:8]}"
    consumers = [group_consumer(bootstrap, group) for _ in range(3)]
    for consumer in consumers:
        consumer.subscribe([topic_name])
    seen = {}  # consumer index -> values
    every = {(topic_name, p) for p in range(PARTITIONS)}

    def balanced():
        for index, consumer in enumerate(consumers):
            message = consumer.poll(0.05)
            if message is not None and message.error() is None:
                seen.setdefault(index, []).append(message)
        sets = [assigned(c) for c in consumers]
        disjoint = sum(len(s) for s in sets) == len(set().union(*sets))
        return all(sets) and disjoint and set().union(*sets) == every

    wait_until(balanced, "three members with disjoint assignments covering every partition", timeout=TIMEOUT)
    sets = [assigned(c) for c in consumers]
    assert sorted(len(s) for s in sets) == [2, 2, 2], sets

    # Consume everything, commit after processing.
    received = {}

    def drain():
        for consumer in consumers:
            message = consumer.poll(0.05)
            if message is not None and message.error() is None:
                received[(message.partition(), message.offset())] = message.value()
                consumer.commit(message=message, asynchronous=False)
        # Messages polled while the group was still forming count too (they were committed from
        # nowhere yet; count them as received).
        return len(received) >= PARTITIONS * 10

    for messages in seen.values():
        for message in messages:
            received[(message.partition(), message.offset())] = message.value()
    for index, messages in seen.items():
        for message in messages:
            consumers[index].commit(message=message, asynchronous=False)
    wait_until(drain, "every message consumed by the group", timeout=TIMEOUT)
    assert sorted(received.values()) == sorted(f"first-{p}-{i}".encode() for p in range(PARTITIONS) for i in range(10))

    committed = consumers[0].committed([TopicPartition(topic_name, p) for p in range(PARTITIONS)], timeout=TIMEOUT)
    assert [tp.offset for tp in committed] == [10] * PARTITIONS, committed
    for consumer in consumers:
        consumer.close()

    # A new member of the same group resumes from the committed offsets: only the new messages.
    produce(bootstrap, topic_name, 3, "second")
    resumed = group_consumer(bootstrap, group)
    resumed.subscribe([topic_name])
    later = {}

    def resumed_all():
        message = resumed.poll(0.1)
        if message is not None and message.error() is None:
            later[(message.partition(), message.offset())] = message.value()
        return len(later) >= PARTITIONS * 3

    wait_until(resumed_all, "the new member consumed the messages after the commits", timeout=TIMEOUT)
    assert all(offset >= 10 for (_, offset) in later), sorted(later)
    assert sorted(later.values()) == sorted(f"second-{p}-{i}".encode() for p in range(PARTITIONS) for i in range(3))
    resumed.close()


def test_assign_only_consumer_commits_outside_any_group(bootstrap, topic_name):
    create_topic(bootstrap, topic_name, 2)
    group = f"assign-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    offsets = [TopicPartition(topic_name, 0, 5), TopicPartition(topic_name, 1, 7)]
    consumer.assign(offsets)
    result = consumer.commit(offsets=offsets, asynchronous=False)
    assert all(tp.error is None for tp in result), result
    committed = consumer.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=TIMEOUT)
    assert [tp.offset for tp in committed] == [5, 7]
    consumer.close()
    # Another client of that group sees the same offsets.
    other = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    committed = other.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=TIMEOUT)
    assert [tp.offset for tp in committed] == [5, 7]
    other.close()
