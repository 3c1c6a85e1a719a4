"""Cross-client codec round trips against one Spate broker.

Three producers (confluent-kafka / librdkafka, kafka-python, the Java client through
dev.spate.clients.CodecTool) each write the same record set to one topic per codec (gzip, snappy, lz4,
zstd); then each of the three clients consumes every topic from the beginning, and every record (partition,
offset, timestamp and its type, key, value, headers in order) must equal what was produced. The record set
has null, empty and binary keys and values, large compressible binary values, duplicate and non-ASCII
header keys, empty header values, records without headers and timestamps that go backwards.

Broker recompression: topics created with compression.type=zstd receive gzip batches from each producer;
every client reads the same records back, and a raw Fetch shows only zstd batches stored (while the
compression.type=producer topics keep each producer's codec).

Production happens once (a module fixture); test_produce checks each producer's acknowledgements, and
test_consume checks one consumer against every topic, listing every (producer, codec) that differed.
"""

import base64
import os
import random
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition

from helpers import wait_until

CODECS = ["gzip", "snappy", "lz4", "zstd"]
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
CLIENTS = ["confluent", "kafka-python", "java"]
PARTITIONS = 2
COUNT = 160
BASE_TIMESTAMP = 1_700_000_000_000
TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parents[3]
JAVA_CACHE = ROOT / ".ci" / "cache" / "java"


def make_records(null_header_values):
    """The record set, the same for every producer but for null header values, which kafka-python's
    producer cannot send (it wants (str, bytes) headers)."""
    rng = random.Random("spate-codecs")
    records = []
    for i in range(COUNT):
        if i % 25 == 4:
            key = None
        elif i % 25 == 9:
            key = b""
        elif i % 17 == 3:
            key = rng.randbytes(16)
        else:
            key = f"key-{i % 11}".encode()
        if i % 30 == 5:
            value = b""
        elif i % 30 == 13 and key is not None:
            value = None
        elif i % 40 == 21:
            value = rng.randbytes(4096) * 6  # 24 KiB of binary that every codec can shrink
        elif i % 10 == 7:
            value = bytes(range(256)) + rng.randbytes(64)
        else:
            value = (f"päyload {i} " + "compressible text " * (i % 37)).encode()
        if i % 8 == 0:
            headers = []
        else:
            headers = [("dup", b"first"), ("i", str(i).encode()), ("dup", b"second"), ("empty", b"")]
            if i % 8 == 3:
                headers += [("ключ", "значение".encode()), ("bin", bytes([0, 255, i % 256])), ("dup", b"third")]
            if i % 8 == 5 and null_header_values:
                headers.append(("null", None))
        # Mostly increasing, but every ninth goes back before its predecessor (a negative timestamp delta).
        timestamp = BASE_TIMESTAMP + 1000 * i - (5500 if i % 9 == 4 else 0)
        partition = (i // 3) % PARTITIONS
        records.append({"partition": partition, "timestamp": timestamp, "key": key, "value": value, "headers": headers})
    return records


def expected_contents(records):
    """What a consumer must see: (partition, offset, "CreateTime", timestamp, key, value, headers) in offset
    order, each partition's offsets 0, 1, ... in produce order."""
    next_offset = {}
    contents = []
    for r in records:
        offset = next_offset.get(r["partition"], 0)
        next_offset[r["partition"]] = offset + 1
        contents.append((r["partition"], offset, "CreateTime", r["timestamp"], r["key"], r["value"], tuple(r["headers"])))
    return sorted(contents, key=lambda c: (c[0], c[1]))


# ---- the tab-separated line format CodecTool speaks ------------------------------------------------------


def encode_field(data):
    return "~" if data is None else "=" + base64.b64encode(data).decode()


def decode_field(field):
    if field == "~":
        return None
    assert field.startswith("="), f"bad byte field {field!r}"
    return base64.b64decode(field[1:], validate=True)


def java(*args, timeout=90):
    classes = JAVA_CACHE / "classes"
    if not classes.is_dir():
        pytest.fail(f"missing {classes}: run scripts/install-clients.sh java")
    command = [
        "java",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        f"{classes}:{JAVA_CACHE / 'lib'}/*",
        "dev.spate.clients.CodecTool",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"CodecTool {args[0]} exited with {done.returncode}:\n{done.stderr[-4000:]}"
    return [line.split("\t") for line in done.stdout.splitlines() if line]


# ---- producers: each returns {topic: [(partition, offset, timestamp) per record]} ----------------------


def produce_confluent(bootstrap, targets, records):
    acks = {}
    for topic, codec in targets:
        errors = []
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": codec,
                "message.timeout.ms": int(TIMEOUT * 1000),
                "error_cb": lambda error: errors.append(str(error)),
            }
        )
        reports = [None] * len(records)

        def reporter(index):
            def report(error, message):
                reports[index] = error if error is not None else (message.partition(), message.offset(), message.timestamp()[1])

            return report

        for index, r in enumerate(records):
            producer.produce(
                topic,
                key=r["key"],
                value=r["value"],
                headers=r["headers"] or None,
                partition=r["partition"],
                timestamp=r["timestamp"],
                on_delivery=reporter(index),
            )
            producer.poll(0)
        remaining = producer.flush(TIMEOUT)
        assert remaining == 0, f"{topic}: {remaining} messages undelivered after {TIMEOUT} s; errors: {errors}"
        assert not errors, f"{topic}: librdkafka reported errors: {errors}"
        acks[topic] = reports
    return acks


def produce_kafka_python(bootstrap, targets, records):
    acks = {}
    for topic, codec in targets:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, compression_type=codec, request_timeout_ms=15_000
        )
        try:
            futures = [
                producer.send(
                    topic,
                    key=r["key"],
                    value=r["value"],
                    headers=r["headers"],
                    partition=r["partition"],
                    timestamp_ms=r["timestamp"],
                )
                for r in records
            ]
            producer.flush(timeout=TIMEOUT)
            reports = []
            for future in futures:
                metadata = future.get(timeout=TIMEOUT)
                reports.append((metadata.partition, metadata.offset, metadata.timestamp))
        finally:
            producer.close(timeout=10)
        acks[topic] = reports
    return acks


def produce_java(bootstrap, targets, records):
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as file:
        for r in records:
            fields = [str(r["partition"]), str(r["timestamp"]), encode_field(r["key"]), encode_field(r["value"])]
            for name, value in r["headers"]:
                fields += [encode_field(name.encode()), encode_field(value)]
            file.write("\t".join(fields) + "\n")
    try:
        lines = java("produce", file.name, *[f"{topic}:{codec}" for topic, codec in targets])
    finally:
        os.unlink(file.name)
    acks = {topic: [None] * len(records) for topic, _ in targets}
    for line in lines:
        assert line[0] == "ACK" and len(line) == 6, f"CodecTool produce printed {line}"
        acks[line[1]][int(line[2])] = (int(line[3]), int(line[4]), int(line[5]))
    return acks


PRODUCERS = {"confluent": produce_confluent, "kafka-python": produce_kafka_python, "java": produce_java}


# ---- consumers: each returns {topic: [record tuples in the order consumed]} ----------------------------


def consume_confluent(bootstrap, topics, count):
    errors = []
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "spate-assign-only",  # librdkafka wants one; assign() only, nothing committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": 100,
            "check.crcs": True,
            "error_cb": lambda error: errors.append(str(error)),
        }
    )
    got = {topic: [] for topic in topics}
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(PARTITIONS)])
        deadline = time.monotonic() + TIMEOUT
        while any(len(records) < count for records in got.values()):
            assert time.monotonic() < deadline, (
                f"confluent consumer: got {[len(r) for r in got.values()]} records within {TIMEOUT} s, want {count} "
                f"of each topic; errors: {errors}"
            )
            for message in consumer.consume(500, 0.2):
                assert message.error() is None, f"confluent consumer: {message.error()}"
                kind, stamp = message.timestamp()
                got[message.topic()].append(
                    (
                        message.partition(),
                        message.offset(),
                        "CreateTime" if kind == TIMESTAMP_CREATE_TIME else f"type {kind}",
                        stamp,
                        message.key(),
                        message.value(),
                        tuple(message.headers() or ()),
                    )
                )
        assert not errors, f"confluent consumer: librdkafka reported errors: {errors}"
    finally:
        consumer.close()
    return got


def consume_kafka_python(bootstrap, topics, count):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
        check_crcs=True,
        request_timeout_ms=15_000,
    )
    got = {topic: [] for topic in topics}
    try:
        consumer.assign([KafkaTopicPartition(t, p) for t in topics for p in range(PARTITIONS)])
        consumer.seek_to_beginning()
        deadline = time.monotonic() + TIMEOUT
        while any(len(records) < count for records in got.values()):
            assert time.monotonic() < deadline, (
                f"kafka-python consumer: got {[len(r) for r in got.values()]} records within {TIMEOUT} s, "
                f"want {count} of each topic"
            )
            for batch in consumer.poll(timeout_ms=200).values():
                for m in batch:
                    got[m.topic].append(
                        (
                            m.partition,
                            m.offset,
                            "CreateTime" if m.timestamp_type == 0 else f"type {m.timestamp_type}",
                            m.timestamp,
                            m.key,
                            m.value,
                            tuple(m.headers or ()),
                        )
                    )
    finally:
        consumer.close()
    return got


def consume_java(bootstrap, topics, count):
    got = {topic: [] for topic in topics}
    for line in java("consume", str(count), *topics):
        assert line[0] == "REC" and len(line) >= 8 and len(line) % 2 == 0, f"CodecTool consume printed {line}"
        headers = tuple(
            (decode_field(line[i]).decode(), decode_field(line[i + 1])) for i in range(8, len(line), 2)
        )
        kind = "CreateTime" if line[4] == "CreateTime" else f"type {line[4]}"
        got[line[1]].append(
            (int(line[2]), int(line[3]), kind, int(line[5]), decode_field(line[6]), decode_field(line[7]), headers)
        )
    return got


CONSUMERS = {"confluent": consume_confluent, "kafka-python": consume_kafka_python, "java": consume_java}


# ---- raw Fetch: the codec of each stored batch -----------------------------------------------------------


def _recv_exact(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError("the broker closed the connection during a Fetch response")
        data += chunk
    return bytes(data)


def stored_batches(bootstrap, topic, partition):
    """[(base offset, record count, codec id)] of every batch in topic/partition, read with raw Fetch v4
    requests (no client library in between: the attributes' low three bits are the codec)."""
    host, port = bootstrap.rsplit(":", 1)
    batches = []
    offset = 0
    correlation = 0
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        while True:
            correlation += 1
            name = topic.encode()
            body = struct.pack(">hhih", 1, 4, correlation, 9) + b"spate-raw"
            body += struct.pack(">iiiib", -1, 0, 0, 8 << 20, 0)
            body += struct.pack(">ih", 1, len(name)) + name
            body += struct.pack(">iiqi", 1, partition, offset, 8 << 20)
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            response = _recv_exact(sock, size)
            pos = 0
            got_correlation, _throttle, topics = struct.unpack_from(">iii", response, pos)
            pos += 12
            assert got_correlation == correlation and topics == 1, f"Fetch response: correlation {got_correlation}, {topics} topics"
            (name_len,) = struct.unpack_from(">h", response, pos)
            pos += 2 + name_len
            partitions, got_partition, error, high_watermark, _lso, aborted = struct.unpack_from(">iihqqi", response, pos)
            pos += 30
            assert partitions == 1 and got_partition == partition and error == 0, (
                f"Fetch {topic}/{partition} @{offset}: partition {got_partition}, error {error}"
            )
            pos += 16 * max(aborted, 0)
            (records_size,) = struct.unpack_from(">i", response, pos)
            pos += 4
            records = response[pos : pos + max(records_size, 0)]
            at = 0
            while at + 61 <= len(records):
                base_offset, batch_length = struct.unpack_from(">qi", records, at)
                if at + 12 + batch_length > len(records):
                    break  # a partial batch at the end of the response
                magic = records[at + 16]
                (attributes,) = struct.unpack_from(">h", records, at + 21)
                (record_count,) = struct.unpack_from(">i", records, at + 57)
                assert magic == 2, f"{topic}/{partition}: batch at {base_offset} has magic {magic}"
                batches.append((base_offset, record_count, attributes & 7))
                offset = base_offset + record_count
                at += 12 + batch_length
            if offset >= high_watermark:
                return batches
            assert at > 0, f"Fetch {topic}/{partition} @{offset}: no whole batch below the high watermark {high_watermark}"


# ---- the run: topics, then every producer once ----------------------------------------------------------


class Run:
    def __init__(self):
        self.records = {}  # producer -> the record set it sent
        self.topics = {}  # (producer, codec) -> topic; recompression_key(producer) for the zstd topic
        self.acks = {}  # producer -> {topic: reports} or the exception it raised
        self.seconds = {}


def recompression_key(client):
    return (client, "gzip→zstd-topic")


@pytest.fixture(scope="module")
def run(bootstrap):
    tag = uuid.uuid4().hex[:8]
    state = Run()
    new_topics = []
    for client in CLIENTS:
        state.records[client] = make_records(null_header_values=client != "kafka-python")
        for codec in CODECS:
            topic = f"codecs-{client}-{codec}-{tag}"
            state.topics[(client, codec)] = topic
            new_topics.append(NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1))
        topic = f"codecs-{client}-recompressed-{tag}"
        state.topics[recompression_key(client)] = topic
        new_topics.append(
            NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1, config={"compression.type": "zstd"})
        )

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})
    for topic, future in admin.create_topics(new_topics, operation_timeout=15, request_timeout=15).items():
        future.result(timeout=TIMEOUT)
    names = [t.topic for t in new_topics]

    def ready():
        metadata = admin.list_topics(timeout=10)
        for name in names:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or len(topic.partitions) != PARTITIONS:
                return False
            if any(p.error is not None or p.leader != metadata.orig_broker_id for p in topic.partitions.values()):
                return False
        return True

    wait_until(ready, f"the {len(names)} topics have leaders", timeout=TIMEOUT)

    for client in CLIENTS:
        targets = [(state.topics[(client, codec)], codec) for codec in CODECS]
        targets.append((state.topics[recompression_key(client)], "gzip"))
        started = time.monotonic()
        try:
            state.acks[client] = PRODUCERS[client](bootstrap, targets, state.records[client])
        except Exception as error:  # reported by test_produce; the other producers still run
            state.acks[client] = error
        state.seconds[client] = time.monotonic() - started
    return state


@pytest.mark.parametrize("producer", CLIENTS)
def test_produce(run, producer):
    """Every record acknowledged at the partition it was sent to, with the offset its produce order gives
    and its own timestamp (CreateTime)."""
    acks = run.acks[producer]
    if isinstance(acks, Exception):
        raise AssertionError(f"{producer} producer failed: {acks!r}") from acks
    records = run.records[producer]
    want_by_index = []
    next_offset = {}
    for r in records:
        offset = next_offset.get(r["partition"], 0)
        next_offset[r["partition"]] = offset + 1
        want_by_index.append((r["partition"], offset, r["timestamp"]))
    problems = []
    for (client, codec), topic in run.topics.items():
        if client != producer:
            continue
        reports = acks.get(topic)
        if reports is None:
            problems.append(f"{codec}: no acknowledgements for {topic}")
            continue
        if len(reports) != len(want_by_index):
            problems.append(f"{codec}: {len(reports)} acknowledgements, want {len(want_by_index)}")
            continue
        for index, (got, expected) in enumerate(zip(reports, want_by_index)):
            if got != expected:
                problems.append(f"{codec}: record {index} acknowledged as {got!r}, want (partition, offset, timestamp) {expected}")
                break
    assert not problems, f"{producer} producer (took {run.seconds[producer]:.1f} s):\n" + "\n".join(problems)


def describe_difference(got, want):
    if len(got) != len(want):
        return f"{len(got)} records, want {len(want)}"
    for g, w in zip(got, want):
        if g != w:
            fields = ["partition", "offset", "timestamp type", "timestamp", "key", "value", "headers"]
            diffs = [f"{name} {a!r:.120} want {b!r:.120}" for name, a, b in zip(fields, g, w) if a != b]
            return f"at partition {w[0]} offset {w[1]}: " + "; ".join(diffs)
    return "same records"


@pytest.mark.parametrize("consumer", CLIENTS)
def test_consume(run, bootstrap, consumer):
    """The consumer reads every topic of every producer that succeeded, and each record is exactly what was
    produced (every field, in offset order within each partition)."""
    topics = {key: topic for key, topic in run.topics.items() if not isinstance(run.acks[key[0]], Exception)}
    assert topics, "no producer succeeded (see test_produce)"
    started = time.monotonic()
    got = CONSUMERS[consumer](bootstrap, sorted(topics.values()), COUNT)
    seconds = time.monotonic() - started
    problems = []
    for (producer, codec), topic in sorted(topics.items()):
        records = got[topic]
        for partition in range(PARTITIONS):
            offsets = [r[1] for r in records if r[0] == partition]
            if offsets != sorted(offsets):
                problems.append(f"{producer} {codec} → {consumer}: partition {partition} consumed out of offset order")
        difference = describe_difference(sorted(records, key=lambda r: (r[0], r[1])), expected_contents(run.records[producer]))
        if difference != "same records":
            problems.append(f"produced by {producer} with {codec}, consumed by {consumer} ({topic}): {difference}")
    assert not problems, f"{len(problems)} of {len(topics)} topics differ ({seconds:.1f} s):\n" + "\n".join(problems)


@pytest.mark.parametrize("producer", CLIENTS)
def test_stored_codecs(run, bootstrap, producer):
    """A raw Fetch sees each producer's codec kept in the compression.type=producer topics (Kafka's
    default), and only zstd batches in the compression.type=zstd topic that received gzip: the broker
    recompressed them."""
    if isinstance(run.acks[producer], Exception):
        pytest.fail(f"the {producer} producer failed (see test_produce)")
    problems = []
    for key, want in [((producer, codec), codec) for codec in CODECS] + [(recompression_key(producer), "zstd")]:
        topic = run.topics[key]
        counted = 0
        in_codec = 0
        # librdkafka sends a batch uncompressed when compressing it would not make it smaller (a batch of
        # one small record, depending on timing). The broker keeps such batches as sent in a `producer`
        # topic; the compression.type=zstd topic must hold zstd only.
        allowed = {CODEC_IDS[want]}
        if producer == "confluent" and key != recompression_key(producer):
            allowed.add(CODEC_IDS["none"])
        for partition in range(PARTITIONS):
            batches = stored_batches(bootstrap, topic, partition)
            counted += sum(count for _, count, _ in batches)
            in_codec += sum(1 for _, _, codec in batches if codec == CODEC_IDS[want])
            wrong = [(base, count, codec) for base, count, codec in batches if codec not in allowed]
            if wrong:
                problems.append(
                    f"{key[1]} ({topic}) partition {partition}: batches (base offset, records, codec id) {wrong[:5]} "
                    f"of {len(batches)}; want codec {want} ({CODEC_IDS[want]})"
                )
        if in_codec == 0:
            problems.append(f"{key[1]} ({topic}): no batch stored as {want}")
        if counted != COUNT:
            problems.append(f"{key[1]} ({topic}): {counted} records in the stored batches, want {COUNT}")
    assert not problems, f"{producer} producer:\n" + "\n".join(problems)
