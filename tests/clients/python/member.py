"""One consumer-group member in its own OS process, for test_group_failover.py.

A test can only kill -9 a consumer that lives in another process, so each member runs this script
(`python member.py CONFIG_JSON`) and reports to the test on stdout, one JSON object per line, flushed
at once so that whatever a killed member reported before SIGKILL reaches the test:

    {"event": "started"}
    {"event": "assign"|"revoke"|"lost", "partitions": [...], "member_id": "..."}   (rebalance callbacks)
    {"event": "consumed", "partition": P, "offset": O, "value": "..."}            (before committing it)
    {"event": "committed", "partition": P, "offset": O + 1}                       (the commit was acknowledged)
    {"event": "commit_failed", "partition": P, "offset": O + 1, "error": "..."}
    {"event": "error", "error": "..."}

CONFIG_JSON: {"topic": T, "consumer": {librdkafka settings}, "process_ms": N}. The member "processes"
each message for process_ms (default 0) and then commits it synchronously (enable.auto.commit false),
so a message it reported consumed but not committed is the only kind another member may see again
after this one dies. It exits when its parent (the test) is
gone, so a killed test run leaves no consumers behind.
"""

import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException


def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def main():
    config = json.loads(sys.argv[1])
    parent = os.getppid()
    process_ms = config.get("process_ms", 0)
    consumer = Consumer(config["consumer"])

    def callback(event):
        def report(consumer, partitions):
            emit(event, partitions=sorted(tp.partition for tp in partitions), member_id=consumer.memberid())

        return report

    consumer.subscribe([config["topic"]], on_assign=callback("assign"), on_revoke=callback("revoke"),
                       on_lost=callback("lost"))
    emit("started")
    while os.getppid() == parent:
        message = consumer.poll(0.1)
        if message is None:
            continue
        if message.error() is not None:
            emit("error", error=str(message.error()))
            continue
        partition, offset = message.partition(), message.offset()
        emit("consumed", partition=partition, offset=offset, value=message.value().decode())
        time.sleep(process_ms / 1000)
        try:
            result = consumer.commit(message=message, asynchronous=False)
        except KafkaException as error:
            emit("commit_failed", partition=partition, offset=offset + 1, error=str(error))
            continue
        for tp in result:
            if tp.error is not None:
                emit("commit_failed", partition=tp.partition, offset=tp.offset, error=str(tp.error))
            else:
                emit("committed", partition=tp.partition, offset=tp.offset)


if __name__ == "__main__":
    main()
