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


def test_admin_lists_describes_lags_and_deletes_groups(bootstrap, topic_name):
    """AdminClient's group APIs (ListGroups, DescribeGroups, OffsetFetch, DeleteGroups) against a group a
    real consumer made, with lag from ListOffsets."""
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions
    from confluent_kafka.admin import OffsetSpec

    create_topic(bootstrap, topic_name, 2)
    produce_two = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for partition, count in ((0, 5), (1, 3)):
        for i in range(count):
            produce_two.produce(topic_name, value=f"v{i}".encode(), partition=partition)
    assert produce_two.flush(TIMEOUT) == 0
    group = f"admin-{uuid.uuid4().hex[:8]}"
    consumer = group_consumer(bootstrap, group)
    consumer.subscribe([topic_name])
    seen = []

    def consumed_everything():
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            seen.append(message)
        return len(seen) >= 8

    wait_until(consumed_everything, "the consumer read every message", timeout=TIMEOUT)
    # Commit 3 of partition 0 and all of partition 1: lag 2 and 0.
    commits = [TopicPartition(topic_name, 0, 3), TopicPartition(topic_name, 1, 3)]
    assert all(tp.error is None for tp in consumer.commit(offsets=commits, asynchronous=False))

    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT).result()
    mine = [g for g in listed.valid if g.group_id == group]
    assert len(mine) == 1, listed.valid
    assert mine[0].state == ConsumerGroupState.STABLE
    assert not mine[0].is_simple_consumer_group
    stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}, request_timeout=TIMEOUT).result()
    assert group in {g.group_id for g in stable.valid}
    empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}, request_timeout=TIMEOUT).result()
    assert group not in {g.group_id for g in empty.valid}

    described = admin.describe_consumer_groups([group, "no-such-group"], request_timeout=TIMEOUT)
    description = described[group].result()
    assert description.state == ConsumerGroupState.STABLE
    assert description.partition_assignor == "range" or description.partition_assignor
    assert len(description.members) == 1
    member = description.members[0]
    assert member.client_id == "rdkafka"
    # librdkafka decodes the member's assignment bytes: both partitions.
    assert {(tp.topic, tp.partition) for tp in member.assignment.topic_partitions} == {
        (topic_name, 0),
        (topic_name, 1),
    }
    assert described["no-such-group"].result().state == ConsumerGroupState.DEAD

    # Committed offsets and lag (end offset - committed offset).
    fetched = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=TIMEOUT)
    committed = {(tp.topic, tp.partition): tp.offset for tp in fetched[group].result().topic_partitions}
    assert committed == {(topic_name, 0): 3, (topic_name, 1): 3}
    ends = admin.list_offsets(
        {TopicPartition(topic_name, p): OffsetSpec.latest() for p in (0, 1)}, request_timeout=TIMEOUT
    )
    end = {(tp.topic, tp.partition): future.result().offset for tp, future in ends.items()}
    lag = {key: end[key] - committed[key] for key in committed}
    assert lag == {(topic_name, 0): 2, (topic_name, 1): 0}

    # A group with a member cannot be deleted; once the consumer left, it can, offsets included.
    busy = admin.delete_consumer_groups([group], request_timeout=TIMEOUT)[group]
    try:
        busy.result()
        raise AssertionError("a group with members was deleted")
    except Exception as error:  # KafkaException(NON_EMPTY_GROUP)
        assert "NON_EMPTY_GROUP" in str(error) or "not empty" in str(error).lower(), error
    consumer.close()
    wait_until(
        lambda: admin.describe_consumer_groups([group])[group].result().state == ConsumerGroupState.EMPTY,
        "the group is empty after its consumer left",
        timeout=TIMEOUT,
    )
    admin.delete_consumer_groups([group], request_timeout=TIMEOUT)[group].result()
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT).result()
    assert group not in {g.group_id for g in listed.valid}
    fetched = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=TIMEOUT)
    assert all(tp.offset < 0 for tp in fetched[group].result().topic_partitions)
    missing = admin.delete_consumer_groups(["no-such-group"], request_timeout=TIMEOUT)["no-such-group"]
    try:
        missing.result()
        raise AssertionError("an unknown group was deleted")
    except Exception as error:  # KafkaException(GROUP_ID_NOT_FOUND)
        assert "GROUP_ID_NOT_FOUND" in str(error) or "does not exist" in str(error).lower(), error
