"""confluent-kafka (librdkafka 2.x) against Spate: acks=all, every compression codec, exact round trips.

Each test creates its own topic with the AdminClient, produces with explicit keys, values, headers
(duplicate keys, null values) and timestamps, reads everything back with a consumer that uses
assign() only (no subscribe, no commits: there are no groups), and compares every field, plus the
offsets the delivery reports gave and the watermarks.
"""

import random
import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import wait_until

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
BASE_TIMESTAMP = 1_700_000_000_000
TIMEOUT = 30.0


class ClientErrors:
    """Collects what librdkafka reports through error_cb, so a test can show it or fail on it."""

    def __init__(self):
        self.errors = []

    def __call__(self, error):
        self.errors.append(str(error))

    def assert_none(self, what):
        assert not self.errors, f"{what}: librdkafka reported errors: {self.errors}"


def admin_client(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def create_topic(bootstrap, name, partitions, config=None):
    """Creates `name` through CreateTopics and waits until Metadata shows a leader for every partition."""
    admin = admin_client(bootstrap)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=15,
        request_timeout=15,
    )
    futures[name].result(timeout=TIMEOUT)

    def ready():
        metadata = admin.list_topics(name, timeout=10)
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None or len(topic.partitions) != partitions:
            return False
        return all(p.error is None and p.leader == metadata.orig_broker_id for p in topic.partitions.values())

    wait_until(ready, f"topic {name} has a leader for each of its {partitions} partitions", timeout=TIMEOUT)


def make_records(codec, count):
    """Records with every shape a client can send: null and empty keys and values, no headers, duplicate
    header keys, null header values, and values that compress well or not at all."""
    rng = random.Random(f"spate-{codec}")
    records = []
    for i in range(count):
        if i % 50 == 7:
            key = None
        elif i % 50 == 11:
            key = b""
        else:
            key = f"key-{i % 13}".encode()
        if i % 100 == 3:
            value = None
        elif i % 100 == 5:
            value = b""
        elif i % 100 == 9:
            value = rng.randbytes(20_000)
        else:
            value = (f"{codec}-{i}-" + "compressible " * (i % 40)).encode()
        if i % 10 == 1:
            headers = None
        else:
            headers = [("dup", b"first"), ("i", str(i).encode()), ("dup", b"second"), ("empty", b"")]
            if i % 10 == 2:
                headers.append(("null", None))
        records.append({"key": key, "value": value, "headers": headers, "timestamp": BASE_TIMESTAMP + 3 * i})
    return records


def produce(bootstrap, topic, records, partition_of=None, **config):
    """Produces `records` in order and returns their delivery reports (error, partition, offset, timestamp)."""
    errors = ClientErrors()
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": int(TIMEOUT * 1000),
            "error_cb": errors,
            **config,
        }
    )
    reports = [None] * len(records)

    def reporter(index):
        def report(error, message):
            reports[index] = (error, message.partition(), message.offset(), message.timestamp())

        return report

    for index, record in enumerate(records):
        extra = {} if partition_of is None else {"partition": partition_of(index)}
        kwargs = {k: v for k, v in record.items() if v is not None or k in ("key", "value")}
        producer.produce(topic, on_delivery=reporter(index), **kwargs, **extra)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT)
    assert remaining == 0, f"{remaining} messages still undelivered after {TIMEOUT} s; errors: {errors.errors}"
    assert all(r is not None for r in reports), "a delivery report is missing"
    errors.assert_none("producer")
    return reports


def consume(bootstrap, topic, partitions, count, timeout=TIMEOUT):
    """Reads `count` messages from the start of every partition with assign() (no group, no commits)."""
    errors = ClientErrors()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            # librdkafka wants a group.id for a consumer even when it only ever uses assign();
            # nothing here joins the group or commits.
            "group.id": "spate-assign-only",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": 100,
            "check.crcs": True,
            "error_cb": errors,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        messages = []
        deadline = time.monotonic() + timeout
        polls = 0
        while len(messages) < count:
            polls += 1
            assert time.monotonic() < deadline and polls < 100_000, (
                f"consumed {len(messages)} of {count} messages in {timeout} s; errors: {errors.errors}"
            )
            message = consumer.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, f"consume error: {message.error()}"
            messages.append(message)
        watermarks = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) for p in range(partitions)]
        errors.assert_none("consumer")
        return messages, watermarks
    finally:
        consumer.close()


def check_round_trip(records, reports, messages, watermarks, partitions):
    """Every consumed message matches the record whose delivery report named its partition and offset."""
    sent = {}
    for index, (error, partition, offset, _) in enumerate(reports):
        assert error is None, f"record {index} was not delivered: {error}"
        assert 0 <= partition < partitions and offset >= 0, f"record {index}: delivery report {reports[index]}"
        assert (partition, offset) not in sent, f"records {sent.get((partition, offset))} and {index} got the same offset"
        sent[(partition, offset)] = index
    for partition in range(partitions):
        offsets = sorted(o for (p, o) in sent if p == partition)
        assert offsets == list(range(len(offsets))), f"partition {partition}: offsets {offsets[:10]}... are not 0, 1, 2, ..."
        # One producer: the partition keeps the order of produce() calls.
        in_offset_order = [sent[(partition, o)] for o in offsets]
        assert in_offset_order == sorted(in_offset_order), (
            f"partition {partition}: records stored out of produce order: {in_offset_order[:20]}..."
        )
        assert watermarks[partition] == (0, len(offsets)), f"partition {partition}: watermarks {watermarks[partition]}, want (0, {len(offsets)})"

    assert len(messages) == len(records), f"consumed {len(messages)} messages, produced {len(records)}"
    last_offset = {}
    for message in messages:
        where = f"partition {message.partition()} offset {message.offset()}"
        assert message.offset() > last_offset.get(message.partition(), -1), f"{where}: out of order"
        last_offset[message.partition()] = message.offset()
        index = sent.get((message.partition(), message.offset()))
        assert index is not None, f"{where}: consumed, but no delivery report named it"
        record = records[index]
        assert message.key() == record["key"], f"{where}: key {message.key()!r}, want {record['key']!r}"
        assert message.value() == record["value"], f"{where}: value {message.value()!r:.80}, want {record['value']!r:.80}"
        assert message.headers() == record["headers"], f"{where}: headers {message.headers()}, want {record['headers']}"
        assert message.timestamp() == (TIMESTAMP_CREATE_TIME, record["timestamp"]), (
            f"{where}: timestamp {message.timestamp()}, want (CreateTime, {record['timestamp']})"
        )


@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trip(bootstrap, topic_name, codec):
    partitions = 2
    create_topic(bootstrap, topic_name, partitions)
    records = make_records(codec, 400)
    reports = produce(bootstrap, topic_name, records, partition_of=lambda i: i % partitions, **{"compression.type": codec})
    messages, watermarks = consume(bootstrap, topic_name, partitions, len(records))
    check_round_trip(records, reports, messages, watermarks, partitions)


def test_idempotent_producer(bootstrap, topic_name):
    """enable.idempotence=true: InitProducerId, then produce with a producer id and sequence numbers."""
    partitions = 3
    create_topic(bootstrap, topic_name, partitions)
    records = make_records("idempotent", 600)
    reports = produce(bootstrap, topic_name, records, **{"enable.idempotence": True, "compression.type": "zstd"})
    messages, watermarks = consume(bootstrap, topic_name, partitions, len(records))
    check_round_trip(records, reports, messages, watermarks, partitions)


@pytest.mark.parametrize("acks", ["1", "all"])
def test_pipelined_produce_keeps_order(bootstrap, topic_name, acks):
    """Many small Produce requests in flight on one connection: Kafka handles a connection's requests
    in order, so a partition keeps the producer's order even without idempotence."""
    create_topic(bootstrap, topic_name, 1)
    records = [{"key": None, "value": f"{i:05}".encode(), "headers": None, "timestamp": BASE_TIMESTAMP + i} for i in range(3000)]
    config = {"acks": acks, "linger.ms": 0, "batch.num.messages": 3, "max.in.flight.requests.per.connection": 5}
    reports = produce(bootstrap, topic_name, records, **config)
    offsets = [offset for _, _, offset, _ in reports]
    out_of_order = [(i, offsets[i - 1], offsets[i]) for i in range(1, len(offsets)) if offsets[i] <= offsets[i - 1]]
    assert not out_of_order, f"{len(out_of_order)} records stored before records produced earlier; first (index, previous offset, offset): {out_of_order[:5]}"
    messages, watermarks = consume(bootstrap, topic_name, 1, len(records))
    check_round_trip(records, reports, messages, watermarks, 1)


def test_acks_levels(bootstrap, topic_name):
    """acks=0, 1 and all each store everything; acks=1 and all report offsets."""
    create_topic(bootstrap, topic_name, 1)
    expected = []
    for acks in ["0", "1", "all"]:
        records = [
            {"key": f"{acks}-{i}".encode(), "value": f"acks {acks} record {i}".encode(), "headers": None, "timestamp": BASE_TIMESTAMP + i}
            for i in range(100)
        ]
        reports = produce(bootstrap, topic_name, records, acks=acks)
        assert all(error is None for error, *_ in reports), f"acks={acks}: {reports}"
        if acks != "0":
            assert all(offset >= 0 for _, _, offset, _ in reports), f"acks={acks}: reports without offsets: {reports[:3]}"
        expected.extend((r["key"], r["value"]) for r in records)
    # acks=0 requests may still be in the broker when the next producer's arrive: compare as sets.
    messages, watermarks = consume(bootstrap, topic_name, 1, len(expected))
    assert sorted((m.key(), m.value()) for m in messages) == sorted(expected)
    assert watermarks[0] == (0, len(expected))


def test_log_append_time(bootstrap, topic_name):
    """message.timestamp.type=LogAppendTime: the broker stamps the batches; the client's times are replaced."""
    create_topic(bootstrap, topic_name, 1, {"message.timestamp.type": "LogAppendTime"})
    records = [{"key": None, "value": f"v{i}".encode(), "headers": None, "timestamp": BASE_TIMESTAMP + i} for i in range(50)]
    before = int(time.time() * 1000)
    reports = produce(bootstrap, topic_name, records, **{"compression.type": "lz4"})
    after = int(time.time() * 1000)
    for error, _, _, (kind, stamp) in reports:
        assert error is None
        assert kind == TIMESTAMP_LOG_APPEND_TIME and before - 1000 <= stamp <= after + 1000, (
            f"delivery report timestamp {(kind, stamp)}: want LogAppendTime within [{before}, {after}]"
        )
    messages, _ = consume(bootstrap, topic_name, 1, len(records))
    for message in messages:
        kind, stamp = message.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME, f"offset {message.offset()}: timestamp {message.timestamp()}"
        assert before - 1000 <= stamp <= after + 1000, f"offset {message.offset()}: LogAppendTime {stamp} outside [{before}, {after}]"
    assert [m.value() for m in messages] == [r["value"] for r in records]


def test_large_values_and_max_message_bytes(bootstrap, topic_name):
    """Values up to ~900 KB round-trip under the default max.message.bytes; a topic with a smaller
    max.message.bytes refuses a larger batch with MESSAGE_TOO_LARGE."""
    create_topic(bootstrap, topic_name, 1)
    rng = random.Random("large")
    records = [
        {"key": f"big-{size}".encode(), "value": rng.randbytes(size), "headers": None, "timestamp": BASE_TIMESTAMP + size}
        for size in (1, 100_000, 500_000, 900_000)
    ]
    reports = produce(bootstrap, topic_name, records, **{"linger.ms": 0})
    messages, watermarks = consume(bootstrap, topic_name, 1, len(records))
    check_round_trip(records, reports, messages, watermarks, 1)

    small = topic_name + "-small"
    create_topic(bootstrap, small, 1, {"max.message.bytes": "10000"})
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": int(TIMEOUT * 1000), "retries": 0})
    results = []
    producer.produce(small, value=rng.randbytes(50_000), on_delivery=lambda error, message: results.append(error))
    assert producer.flush(TIMEOUT) == 0
    assert len(results) == 1 and results[0] is not None, f"a 50 KB record was accepted by a topic with max.message.bytes=10000: {results}"
    assert results[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, f"want MESSAGE_TOO_LARGE, got {results[0]}"


def test_auto_create_topic(bootstrap, topic_name):
    """Producing to a topic that does not exist creates it (auto.create.topics.enable, num.partitions=1)."""
    records = [{"key": b"k", "value": f"auto {i}".encode(), "headers": None, "timestamp": BASE_TIMESTAMP + i} for i in range(10)]
    reports = produce(bootstrap, topic_name, records)
    metadata = admin_client(bootstrap).list_topics(topic_name, timeout=10)
    assert len(metadata.topics[topic_name].partitions) == 1, metadata.topics[topic_name].partitions
    messages, watermarks = consume(bootstrap, topic_name, 1, len(records))
    check_round_trip(records, reports, messages, watermarks, 1)


def test_offsets_for_times(bootstrap, topic_name):
    """ListOffsets by timestamp through librdkafka: the first offset whose timestamp is at or after the query."""
    create_topic(bootstrap, topic_name, 1)
    records = [{"key": None, "value": f"t{i}".encode(), "headers": None, "timestamp": BASE_TIMESTAMP + 10 * i} for i in range(100)]
    produce(bootstrap, topic_name, records, **{"compression.type": "gzip", "batch.num.messages": 7})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "spate-assign-only", "enable.auto.commit": False})
    try:
        for query, want in [
            (BASE_TIMESTAMP - 5, 0),
            (BASE_TIMESTAMP, 0),
            (BASE_TIMESTAMP + 10 * 42, 42),
            (BASE_TIMESTAMP + 10 * 42 + 1, 43),
            (BASE_TIMESTAMP + 10 * 99, 99),
            (BASE_TIMESTAMP + 10 * 99 + 1, -1),  # past the last: "no such offset", the end (librdkafka: -1)
        ]:
            (found,) = consumer.offsets_for_times([TopicPartition(topic_name, 0, query)], timeout=10)
            assert found.error is None, f"offsets_for_times({query}): {found.error}"
            assert found.offset == want, f"offsets_for_times({query}) = {found.offset}, want {want}"
    finally:
        consumer.close()
