"""kafka-python against Spate: the admin client (topics, partitions, configs, records, cluster, log dirs)
and offsets by timestamp with an assign()-only consumer.

kafka-python 3.x speaks the newest versions both sides support; its alter_configs uses
IncrementalAlterConfigs when the broker offers it, and AlterConfigs when asked (incremental=False).
"""

import uuid

import kafka.errors as Errors
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

from helpers import wait_until

TIMEOUT_MS = 15_000
BASE_TIMESTAMP = 1_700_000_000_000

# Kafka's topic-config defaults, which a topic without overrides reports.
KAFKA_TOPIC_DEFAULTS = {
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "segment.bytes": "1073741824",
    "segment.ms": "604800000",
    "cleanup.policy": "delete",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "compression.type": "producer",
    "min.insync.replicas": "1",
    "flush.messages": "9223372036854775807",
    "flush.ms": "9223372036854775807",
}


@pytest.fixture
def admin(bootstrap):
    client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="spate-kafka-python", request_timeout_ms=TIMEOUT_MS)
    try:
        yield client
    finally:
        client.close()


def create(admin, name, partitions=None, configs=None):
    spec = {"replication_factor": 1}
    if partitions is not None:
        spec["num_partitions"] = partitions
    if configs:
        spec["configs"] = configs
    result = admin.create_topics({name: spec}, timeout_ms=TIMEOUT_MS, wait_for_metadata=True)
    (topic,) = result["topics"]
    assert topic["name"] == name and topic["error_code"] == 0, result
    return topic


def topic_configs(admin, name, config_filter="all", keys=None):
    """{config name: description} of one topic, as DescribeConfigs answers."""
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name, keys)], config_filter=config_filter)
    return result["topic"][name]


def overrides(admin, name):
    """{config name: value} of the topic's own settings (source DYNAMIC_TOPIC_CONFIG)."""
    return {key: config["value"] for key, config in topic_configs(admin, name, "modified").items()}


def partitions_of(admin, name):
    (topic,) = admin.describe_topics([name])
    assert topic["name"] == name and topic["error_code"] == 0, topic
    return sorted(topic["partitions"], key=lambda p: p["partition_index"])


def test_create_describe_delete_topics(admin, topic_name):
    created = create(admin, topic_name, 3, {"retention.ms": "3600000", "cleanup.policy": "delete"})
    assert created["num_partitions"] == 3 and created["replication_factor"] == 1, created
    assert created["configs"]["retention.ms"]["value"] == "3600000", created["configs"].get("retention.ms")
    assert topic_name in admin.list_topics()

    (topic,) = admin.describe_topics([topic_name])
    assert topic["topic_id"] not in (None, uuid.UUID(int=0)), f"no topic id: {topic}"
    assert not topic["is_internal"]
    partitions = partitions_of(admin, topic_name)
    assert [p["partition_index"] for p in partitions] == [0, 1, 2]
    for p in partitions:
        assert p["error_code"] == 0 and p["leader_id"] == 0, p
        assert p["replica_nodes"] == [0] and p["isr_nodes"] == [0], p

    with pytest.raises(Errors.TopicAlreadyExistsError):
        admin.create_topics({topic_name: {"num_partitions": 1, "replication_factor": 1}})

    admin.delete_topics([topic_name], timeout_ms=TIMEOUT_MS)
    wait_until(lambda: topic_name not in admin.list_topics(), f"{topic_name} gone from the topic list")
    with pytest.raises(Errors.UnknownTopicOrPartitionError):
        admin.delete_topics([topic_name], timeout_ms=TIMEOUT_MS)
    # The name is free again.
    create(admin, topic_name, 1)
    assert topic_configs(admin, topic_name)["retention.ms"]["value"] == "604800000", "old configs must not survive a delete"


def test_create_topic_defaults_and_validate_only(admin, topic_name):
    create(admin, topic_name)  # num_partitions -1: the broker's num.partitions (1)
    assert len(partitions_of(admin, topic_name)) == 1

    dry = topic_name + "-dry"
    result = admin.create_topics({dry: {"num_partitions": 4, "replication_factor": 1}}, validate_only=True)
    assert result["topics"][0]["error_code"] == 0, result
    assert dry not in admin.list_topics(), "validate_only created the topic"


@pytest.mark.parametrize(
    "name,spec,error",
    [
        ("bad name!", {"num_partitions": 1, "replication_factor": 1}, Errors.InvalidTopicError),
        (".", {"num_partitions": 1, "replication_factor": 1}, Errors.InvalidTopicError),
        ("..", {"num_partitions": 1, "replication_factor": 1}, Errors.InvalidTopicError),
        ("x" * 250, {"num_partitions": 1, "replication_factor": 1}, Errors.InvalidTopicError),
        (None, {"num_partitions": 0, "replication_factor": 1}, Errors.InvalidPartitionsError),
        (None, {"num_partitions": 1, "replication_factor": 3}, Errors.InvalidReplicationFactorError),
        (None, {"num_partitions": 1, "replication_factor": 1, "configs": {"retention.ms": "soon"}}, Errors.InvalidConfigurationError),
        (None, {"num_partitions": 1, "replication_factor": 1, "configs": {"no.such.config": "1"}}, Errors.InvalidConfigurationError),
        (None, {"num_partitions": 1, "replication_factor": 1, "configs": {"cleanup.policy": "shred"}}, Errors.InvalidConfigurationError),
    ],
    ids=["space", "dot", "dotdot", "too-long", "zero-partitions", "replication-3", "bad-value", "unknown-config", "bad-policy"],
)
def test_create_topic_refusals(admin, topic_name, name, spec, error):
    name = name or topic_name
    with pytest.raises(error):
        admin.create_topics({name: spec}, timeout_ms=TIMEOUT_MS)
    assert name not in admin.list_topics()


def test_249_characters_is_legal(admin):
    name = "x" * 249
    create(admin, name, 1)
    assert name in admin.list_topics()
    admin.delete_topics([name], timeout_ms=TIMEOUT_MS)


def test_describe_configs(admin, topic_name):
    create(admin, topic_name, 1, {"retention.ms": "3600000", "max.message.bytes": "2000000"})
    everything = topic_configs(admin, topic_name)
    for key, default in KAFKA_TOPIC_DEFAULTS.items():
        assert key in everything, f"DescribeConfigs lacks {key}; it has {sorted(everything)}"
    assert everything["retention.ms"]["value"] == "3600000"
    assert everything["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG", everything["retention.ms"]
    for key, default in KAFKA_TOPIC_DEFAULTS.items():
        if key in ("retention.ms", "max.message.bytes"):
            continue
        assert everything[key]["value"] == default, f"{key} = {everything[key]['value']}, Kafka's default is {default}"
        assert everything[key]["config_source"] != "DYNAMIC_TOPIC_CONFIG", everything[key]
        assert not everything[key]["read_only"], everything[key]
    assert overrides(admin, topic_name) == {"retention.ms": "3600000", "max.message.bytes": "2000000"}

    only = topic_configs(admin, topic_name, keys=["segment.bytes", "retention.ms"])
    assert set(only) == {"segment.bytes", "retention.ms"}, f"asked for two keys, got {sorted(only)}"

    broker = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "0")], config_filter="all")["broker"]["0"]
    assert broker.get("num.partitions", {}).get("value") == "1", broker.get("num.partitions")
    assert broker.get("auto.create.topics.enable", {}).get("value") == "true", broker.get("auto.create.topics.enable")


def test_alter_configs(admin, topic_name):
    resource = lambda configs: [ConfigResource(ConfigResourceType.TOPIC, topic_name, configs)]  # noqa: E731
    create(admin, topic_name, 1, {"retention.ms": "3600000"})

    # AlterConfigs (whole set; kafka-python re-sends the other overrides it found).
    assert admin.alter_configs(resource({"retention.bytes": "1000000"}), incremental=False) == {"topic": {topic_name: "OK"}}
    assert overrides(admin, topic_name) == {"retention.ms": "3600000", "retention.bytes": "1000000"}

    # IncrementalAlterConfigs: SET one, DELETE another, leave the third alone.
    result = admin.alter_configs(
        resource({"segment.ms": "3600000", "retention.bytes": (AlterConfigOp.DELETE, None)}), incremental=True
    )
    assert result == {"topic": {topic_name: "OK"}}
    assert overrides(admin, topic_name) == {"retention.ms": "3600000", "segment.ms": "3600000"}
    assert topic_configs(admin, topic_name)["retention.bytes"]["value"] == "-1", "a deleted override reads as the default"

    # validate_only changes nothing.
    result = admin.alter_configs(resource({"segment.ms": "7200000"}), validate_only=True, incremental=True)
    assert result == {"topic": {topic_name: "OK"}}
    assert overrides(admin, topic_name)["segment.ms"] == "3600000"

    # Bad values and unknown names are refused per resource, both ways.
    for incremental in (True, False):
        result = admin.alter_configs(resource({"retention.ms": "soon"}), incremental=incremental, raise_on_unknown=False)
        assert "InvalidConfigurationError" in result["topic"][topic_name], result
        result = admin.alter_configs(resource({"no.such.config": "1"}), incremental=incremental, raise_on_unknown=False)
        assert "InvalidConfigurationError" in result["topic"][topic_name], result
    assert overrides(admin, topic_name) == {"retention.ms": "3600000", "segment.ms": "3600000"}

    # Back to defaults.
    assert admin.reset_configs(resource({}), incremental=True) == {"topic": {topic_name: "OK"}}
    assert overrides(admin, topic_name) == {}

    # A topic that does not exist.
    missing = [ConfigResource(ConfigResourceType.TOPIC, topic_name + "-missing", {"retention.ms": "1"})]
    result = admin.alter_configs(missing, incremental=True, raise_on_unknown=False)
    assert "UnknownTopicOrPartitionError" in result["topic"][topic_name + "-missing"], result


def test_create_partitions(admin, bootstrap, topic_name):
    create(admin, topic_name, 1)
    admin.create_partitions({topic_name: 3}, timeout_ms=TIMEOUT_MS)
    wait_until(lambda: len(partitions_of(admin, topic_name)) == 3, "three partitions in Metadata")
    with pytest.raises(Errors.InvalidPartitionsError):
        admin.create_partitions({topic_name: 2}, timeout_ms=TIMEOUT_MS)
    with pytest.raises(Errors.UnknownTopicOrPartitionError):
        admin.create_partitions({topic_name + "-missing": 2}, timeout_ms=TIMEOUT_MS)

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=TIMEOUT_MS)
    try:
        metadata = producer.send(topic_name, value=b"in the new partition", partition=2).get(timeout=30)
        assert (metadata.partition, metadata.offset) == (2, 0), metadata
    finally:
        producer.close(timeout=10)


def produce_timestamped(bootstrap, topic, partitions, per_partition, step=10):
    """Produces records with timestamps BASE + step * i, i = 0.. per partition (idempotent, acks=all:
    kafka-python's defaults); returns {partition: [(offset, timestamp, key, value, headers)]}."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS, linger_ms=5, compression_type="gzip")
    try:
        futures = []
        for partition in range(partitions):
            for i in range(per_partition):
                key, value = f"p{partition}-k{i % 5}".encode(), f"p{partition}-v{i}".encode()
                headers = [("dup", b"1"), ("dup", b"2")]
                timestamp = BASE_TIMESTAMP + step * i
                future = producer.send(topic, key=key, value=value, headers=headers, partition=partition, timestamp_ms=timestamp)
                futures.append((future, timestamp, key, value, headers))
        producer.flush(timeout=30)
        sent = {}
        for future, timestamp, key, value, headers in futures:
            metadata = future.get(timeout=30)
            sent.setdefault(metadata.partition, []).append((metadata.offset, timestamp, key, value, headers))
        return sent
    finally:
        producer.close(timeout=10)


def test_offsets_for_times(admin, bootstrap, topic_name):
    create(admin, topic_name, 2)
    sent = produce_timestamped(bootstrap, topic_name, 2, 50)
    for partition, records in sent.items():
        assert [offset for offset, *_ in records] == list(range(50)), f"partition {partition}: {records[:3]}"

    tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, request_timeout_ms=TIMEOUT_MS)
    try:
        consumer.assign([tp0, tp1])
        assert consumer.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert consumer.end_offsets([tp0, tp1]) == {tp0: 50, tp1: 50}

        found = consumer.offsets_for_times({tp0: BASE_TIMESTAMP + 10 * 17, tp1: BASE_TIMESTAMP + 10 * 17 + 1})
        assert (found[tp0].offset, found[tp0].timestamp) == (17, BASE_TIMESTAMP + 170), found
        assert (found[tp1].offset, found[tp1].timestamp) == (18, BASE_TIMESTAMP + 180), found
        found = consumer.offsets_for_times({tp0: 0, tp1: BASE_TIMESTAMP + 10 * 49 + 1})
        assert (found[tp0].offset, found[tp0].timestamp) == (0, BASE_TIMESTAMP), found
        assert found[tp1] is None, f"no record at or after the last timestamp, got {found[tp1]}"

        # And the records themselves, from where offsets_for_times pointed.
        consumer.seek(tp0, 17)
        consumer.seek(tp1, 0)
        got = {0: [], 1: []}
        def read_all():
            for tp, records in consumer.poll(timeout_ms=200).items():
                got[tp.partition].extend(records)
            return len(got[0]) >= 33 and len(got[1]) >= 50
        wait_until(read_all, "read partition 0 from offset 17 and partition 1 from 0", timeout=30, interval=0)
        for partition, start in ((0, 17), (1, 0)):
            want = sent[partition][start:]
            have = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in got[partition]]
            assert have == want, f"partition {partition}: {have[:2]} ..., want {want[:2]} ..."
    finally:
        consumer.close()


def test_delete_records(admin, bootstrap, topic_name):
    create(admin, topic_name, 1)
    produce_timestamped(bootstrap, topic_name, 1, 100)
    tp = TopicPartition(topic_name, 0)
    result = admin.delete_records({tp: 40}, timeout_ms=TIMEOUT_MS)
    assert result[tp]["low_watermark"] == 40 and result[tp]["error_code"] == 0, result
    with pytest.raises(Errors.OffsetOutOfRangeError):
        admin.delete_records({tp: 101}, timeout_ms=TIMEOUT_MS)

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, request_timeout_ms=TIMEOUT_MS)
    try:
        consumer.assign([tp])
        assert consumer.beginning_offsets([tp]) == {tp: 40}
        consumer.seek_to_beginning(tp)
        got = []
        def read_all():
            for records in consumer.poll(timeout_ms=200).values():
                got.extend(records)
            return len(got) >= 60
        wait_until(read_all, "read the 60 records left", timeout=30, interval=0)
        assert [r.offset for r in got] == list(range(40, 100))
    finally:
        consumer.close()


def test_describe_cluster_and_log_dirs(admin, bootstrap, topic_name):
    host, port = bootstrap.rsplit(":", 1)
    cluster = admin.describe_cluster()
    assert cluster["cluster_id"], cluster
    assert cluster["controller_id"] == 0, cluster
    (broker,) = cluster["brokers"]
    assert (broker["broker_id"], broker["host"], broker["port"]) == (0, host, int(port)), broker

    create(admin, topic_name, 2)
    produce_timestamped(bootstrap, topic_name, 2, 20)
    (answer,) = admin.describe_log_dirs([topic_name])
    assert answer["broker"] == 0
    (log_dir,) = answer["log_dirs"]
    assert log_dir["error_code"] == 0 and log_dir["log_dir"], log_dir
    (topic,) = [t for t in log_dir["topics"] if t["name"] == topic_name]
    sizes = {p["partition_index"]: p["partition_size"] for p in topic["partitions"]}
    assert set(sizes) == {0, 1} and all(size > 0 for size in sizes.values()), topic



def test_consumer_group_admin(admin, bootstrap, topic_name):
    """list/describe/offsets/delete of a group a real KafkaConsumer made, and of an assign()-only one;
    OffsetDelete (delete_group_offsets) refuses a subscribed topic of a live group."""
    from kafka.structs import OffsetAndMetadata

    create(admin, topic_name, partitions=2)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for partition in (0, 1):
        for i in range(4):
            producer.send(topic_name, value=f"v{i}".encode(), partition=partition)
    producer.flush()
    producer.close()
    group = f"kp-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(
        topic_name,
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id="kp-admin-consumer",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=500,
    )
    seen = []

    def consumed():
        for records in consumer.poll(200).values():
            seen.extend(records)
        return len(seen) >= 8

    wait_until(consumed, "the consumer read every message", timeout=30)
    consumer.commit()
    assigned_group = f"kp-assign-{uuid.uuid4().hex[:8]}"
    simple = KafkaConsumer(bootstrap_servers=bootstrap, group_id=assigned_group, enable_auto_commit=False)
    simple.assign([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)])
    simple.commit({TopicPartition(topic_name, p): OffsetAndMetadata(2, "", -1) for p in (0, 1)})
    simple.close()

    listed = {g["group_id"]: g for g in admin.list_groups()}
    assert listed[group]["protocol_type"] == "consumer", listed
    assert listed[assigned_group]["protocol_type"] == "", listed
    stable = {g["group_id"] for g in admin.list_groups(states_filter=["Stable"])}
    assert group in stable and assigned_group not in stable

    description = admin.describe_groups([group])[group]
    assert description["error"] is None, description
    assert description["group_state"] == "Stable"
    assert description["protocol_type"] == "consumer"
    assert description["protocol_data"] in ("range", "roundrobin", "sticky", "cooperative-sticky")
    (member,) = description["members"]
    assert member["client_id"] == "kp-admin-consumer"
    # kafka-python decodes the subscription and assignment bytes; both name the topic.
    assert topic_name in repr(member["member_metadata"]), member
    assert topic_name in repr(member["member_assignment"]), member
    assert admin.describe_groups(["kp-no-such-group"])["kp-no-such-group"]["group_state"] == "Dead"

    offsets = admin.list_group_offsets(group)[group]
    assert {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()} == {
        (topic_name, 0): 4,
        (topic_name, 1): 4,
    }
    refused = admin.delete_group_offsets(group, [TopicPartition(topic_name, 0)])
    assert refused == {TopicPartition(topic_name, 0): Errors.GroupSubscribedToTopicError}, refused
    deleted = admin.delete_group_offsets(assigned_group, [TopicPartition(topic_name, 0)])
    assert deleted == {TopicPartition(topic_name, 0): Errors.NoError}, deleted
    remaining = admin.list_group_offsets(assigned_group)[assigned_group]
    assert {(tp.topic, tp.partition): meta.offset for tp, meta in remaining.items()} == {(topic_name, 1): 2}

    results = admin.delete_groups([group, assigned_group, "kp-no-such-group"])
    assert results == {group: "NonEmptyGroupError", assigned_group: "OK", "kp-no-such-group": "GroupIdNotFoundError"}
    consumer.close()
    wait_until(lambda: admin.describe_groups([group])[group]["group_state"] == "Empty", "the group is empty")
    assert admin.delete_groups([group]) == {group: "OK"}
    listed = {g["group_id"] for g in admin.list_groups()}
    assert group not in listed and assigned_group not in listed, listed
    assert admin.list_group_offsets(group)[group] == {}
