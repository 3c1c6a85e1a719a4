#!/usr/bin/env python3
"""Spate vs Apache Kafka, side by side, on one machine (driven by bench/compare/run.sh).

Python 3 standard library only. run.sh builds the binaries and fetches Kafka's jars; this script
does the rest: raw baselines, each broker in turn (pinned to the broker CPUs, data on the same
disk), spate-bench workloads and Kafka's own ProducerPerformance/ConsumerPerformance against each,
then the ratios as a table, a JSON file and a Markdown file. See README.md next to it.
"""

import argparse
import atexit
import datetime
import glob
import json
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

ALL_WORKLOADS = [
    "max-1k-1p",
    "max-1k-16p",
    "max-100b-1p",
    "max-100b-16p",
    "latency-1k-16p",
    "latency-flush-1k-16p",
    "flush-1k-1p",
    "catchup-1k-16p",
]
# Kafka's tools: topic, partitions, record size.
TOOLS_TOPIC = "kafka-perf-1k-16p"
TOOLS_PARTITIONS = 16
TOOLS_RECORD_BYTES = 1024
TOOLS_PRODUCER_PROPS = ["acks=1", "linger.ms=5", "batch.size=131072", "compression.type=none"]


def log(*parts):
    print("[compare]", *parts, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Processes: every child runs in its own session so a Ctrl-C reaches only this script, which then
# stops them in order. Nothing started here outlives the script.

CHILDREN = []


def start_process(argv, stdout, stderr=subprocess.STDOUT, env=None):
    proc = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=env, start_new_session=True, cwd=ROOT)
    CHILDREN.append(proc)
    return proc


def stop_process(proc, name, grace_s=20.0):
    """SIGTERM, wait up to grace_s, then SIGKILL (the whole process group)."""
    if proc.poll() is None:
        log(f"stopping {name} (pid {proc.pid})")
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in {grace_s:.0f} s: SIGKILL")
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    if proc in CHILDREN:
        CHILDREN.remove(proc)


def cleanup():
    # Newest first: clients before the broker they talk to.
    for proc in reversed(list(CHILDREN)):
        stop_process(proc, f"pid {proc.pid}", grace_s=10.0)


def on_signal(signum, _frame):
    for other in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    log(f"signal {signum}: cleaning up")
    cleanup()
    sys.exit(128 + signum)


def run_tool(argv, timeout_s, log_path):
    """Runs a client tool to completion; returns (rc, stdout). stderr goes to log_path."""
    with open(log_path, "ab") as err:
        err.write(("\n$ " + " ".join(argv) + "\n").encode())
        err.flush()
        proc = start_process(argv, stdout=subprocess.PIPE, stderr=err)
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log(f"timed out after {timeout_s} s: {' '.join(argv[:6])} ...")
            stop_process(proc, argv[0], grace_s=5.0)
            return 124, b""
        finally:
            if proc in CHILDREN:
                CHILDREN.remove(proc)
    with open(log_path, "ab") as err:
        err.write(out)
    return proc.returncode, out.decode(errors="replace")


def pinned(cpus, argv):
    return ["taskset", "-c", cpus, *argv]


# --------------------------------------------------------------------------------------------------
# Readiness: the port accepts, and a Metadata v1 request returns at least one broker.

def metadata_ok(host, port, timeout_s=2.0):
    client_id = b"spate-compare"
    body = struct.pack(">i", -1)  # topics: null = all
    header = struct.pack(">hhih", 3, 1, 7, len(client_id)) + client_id
    frame = header + body
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(frame)) + frame)
            size = struct.unpack(">i", recv_exact(sock, 4))[0]
            payload = recv_exact(sock, size)
    except (OSError, ValueError):
        return False
    correlation_id, broker_count = struct.unpack(">ii", payload[:8])
    return correlation_id == 7 and broker_count >= 1


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_ready(proc, name, host, port, timeout_s, log_path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} while starting; see {log_path}")
        if port_open(host, port) and metadata_ok(host, port):
            return
        time.sleep(0.25)
    raise RuntimeError(f"{name} not ready after {timeout_s} s; see {log_path}")


# --------------------------------------------------------------------------------------------------
# Brokers.

def single_cpu_list(cpus):
    """`--cores` reads a bare number as a count; a CPU list needs a comma or a dash ("0,")."""
    return cpus if ("," in cpus or "-" in cpus) else cpus + ","


class Broker:
    name = "?"

    def __init__(self, cfg):
        self.cfg = cfg
        self.proc = None
        self.data_dir = os.path.join(cfg.bench_dir, self.name)
        self.log_path = os.path.join(cfg.out, f"{self.name}-broker.log")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def wipe(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)
        os.makedirs(self.data_dir)

    def start(self):
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is already in use; set SPATE_PORT / KAFKA_PORT")
        self.wipe()
        self.prepare()
        with open(self.log_path, "ab") as out:
            out.write(f"\n==== {utc_now()} start {self.name}\n".encode())
            out.flush()
            self.proc = start_process(pinned(self.cfg.broker_cpus, self.argv()), stdout=out)
        started = time.monotonic()
        wait_ready(self.proc, self.name, "127.0.0.1", self.port, 120, self.log_path)
        log(f"{self.name} ready on {self.bootstrap} in {time.monotonic() - started:.1f} s (pid {self.proc.pid})")

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc, self.name)
            self.proc = None
        if not self.cfg.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def prepare(self):
        pass


class Spate(Broker):
    name = "spate"

    def __init__(self, cfg):
        self.port = cfg.spate_port
        super().__init__(cfg)

    def argv(self):
        return [
            self.cfg.spate_bin, "serve",
            "--cores", single_cpu_list(self.cfg.broker_cpus),
            "--listen", self.bootstrap,
            "--data-dir", os.path.join(self.data_dir, "data"),
            *self.cfg.spate_extra_args,
        ]


class Kafka(Broker):
    name = "kafka"

    def __init__(self, cfg):
        self.port = cfg.kafka_port
        super().__init__(cfg)

    def prepare(self):
        props = os.path.join(self.data_dir, "server.properties")
        with open(os.path.join(HERE, "kraft.properties.in")) as template:
            text = template.read()
        text = (text.replace("@PORT@", str(self.cfg.kafka_port))
                .replace("@CONTROLLER_PORT@", str(self.cfg.kafka_controller_port))
                .replace("@LOG_DIR@", os.path.join(self.data_dir, "data")))
        with open(props, "w") as out:
            out.write(text)
        java = self.cfg.java_base(heap=None)
        rc, cluster_id = run_tool(java + ["kafka.tools.StorageTool", "random-uuid"], 60, self.log_path)
        cluster_id = cluster_id.strip().splitlines()[-1] if rc == 0 and cluster_id.strip() else ""
        if not cluster_id:
            raise RuntimeError(f"kafka-storage random-uuid failed; see {self.log_path}")
        rc, out = run_tool(pinned(self.cfg.broker_cpus, java + ["kafka.tools.StorageTool", "format", "-t", cluster_id,
                                                                 "-c", props]), 120, self.log_path)
        if rc != 0:
            raise RuntimeError(f"kafka-storage format failed (rc {rc}); see {self.log_path}")
        self.props = props

    def argv(self):
        return [
            "java", f"-Xms{self.cfg.kafka_heap}", f"-Xmx{self.cfg.kafka_heap}",
            # kafka-server-start.sh's KAFKA_JVM_PERFORMANCE_OPTS.
            "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-cp", self.cfg.kafka_classpath, "kafka.Kafka", self.props,
        ]


# --------------------------------------------------------------------------------------------------
# Load: spate-bench and Kafka's tools.

def workload_file(name):
    return os.path.join(ROOT, "bench", "workloads", f"{name}.toml")


def spate_bench(cfg, broker, workload, rate=None):
    """One spate-bench run; returns its JSON object, or {"error": ...}."""
    if not cfg.spate_bench_bin:
        return {"error": "spate-bench not built"}
    path = workload_file(workload)
    if not os.path.exists(path):
        return {"error": f"no workload file {os.path.relpath(path, ROOT)}"}
    argv = [cfg.spate_bench_bin, "run", "--bootstrap", broker.bootstrap, "--workload", path,
            "--label", broker.name, "--json"]
    if rate is not None:
        argv += ["--rate", str(int(rate))]
    argv += cfg.duration_args(workload)
    log(f"{broker.name}: spate-bench {workload}" + (f" at {int(rate)} msg/s" if rate else ""))
    logp = os.path.join(cfg.out, "spate-bench.log")
    for attempt in (1, 2):
        rc, out = run_tool(pinned(cfg.client_cpus, argv), cfg.run_timeout_s, logp)
        result = last_json_line(out, "spate_bench")
        if rc == 0 and result is not None:
            break
        # One retry: a failed run is recorded, not fatal, but a transient error right after topic
        # creation should not cost a whole workload.
        log(f"  spate-bench exited {rc} (attempt {attempt}): {tail(logp, 1)}")
        time.sleep(2)
    if rc != 0 or result is None:
        return {"error": f"spate-bench exited {rc}: {tail(logp, 1)}"}
    summary = result.get("produce") or {}
    consume = result.get("consume") or {}
    log(f"  produce {summary.get('msgs_per_s', 0):.0f} msg/s {summary.get('mib_per_s', 0):.1f} MiB/s "
        f"p99 {((summary.get('latency_ms') or {}).get('p99') or 0):.2f} ms; consume {consume.get('msgs_per_s', 0):.0f} msg/s")
    return result


def last_json_line(text, key):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if key in obj:
                return obj
    return None


PRODUCER_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99.9th")


def parse_producer_performance(text):
    """The final summary line of ProducerPerformance (the last that has percentiles)."""
    found = None
    for line in text.splitlines():
        match = PRODUCER_SUMMARY.search(line)
        if match:
            found = match
    if not found:
        return None
    g = found.groupdict()
    return {
        "records": int(g["records"]), "msgs_per_s": float(g["rps"]),
        "mib_per_s": float(g["mbps"]),  # Kafka's "MB" is 1024*1024 bytes
        "latency_ms": {"avg": float(g["avg"]), "p50": float(g["p50"]), "p95": float(g["p95"]),
                       "p99": float(g["p99"]), "p999": float(g["p999"]), "max": float(g["max"])},
        "line": found.group(0),
    }


def parse_consumer_performance(text):
    """ConsumerPerformance's CSV: a header line starting with start.time, then one data line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith("start.time") and index + 1 < len(lines):
            keys = [key.strip() for key in line.split(",")]
            values = [value.strip() for value in lines[index + 1].split(",")]
            row = dict(zip(keys, values))
            try:
                return {
                    "messages": int(float(row["data.consumed.in.nMsg"])),
                    "mib": float(row["data.consumed.in.MB"]),
                    "msgs_per_s": float(row["nMsg.sec"]),
                    "mib_per_s": float(row["MB.sec"]),
                    "rebalance_ms": float(row["rebalance.time.ms"]),
                    "fetch_ms": float(row["fetch.time.ms"]),
                    "fetch_msgs_per_s": float(row["fetch.nMsg.sec"]),
                    "fetch_mib_per_s": float(row["fetch.MB.sec"]),
                    "line": lines[index + 1],
                }
            except (KeyError, ValueError):
                return None
    return None


def kafka_tools(cfg, broker):
    """Kafka's own generator against `broker`: create the topic, ProducerPerformance at full speed,
    then ConsumerPerformance reading it all back from the start."""
    logp = os.path.join(cfg.out, f"kafka-tools-{broker.name}.log")
    java = pinned(cfg.client_cpus, cfg.java_base(heap="1g"))
    result = {}
    rc, out = run_tool(java + ["org.apache.kafka.tools.TopicCommand", "--bootstrap-server", broker.bootstrap,
                               "--create", "--topic", TOOLS_TOPIC, "--partitions", str(TOOLS_PARTITIONS),
                               "--replication-factor", "1"], 120, logp)
    if rc != 0:
        return {"error": f"TopicCommand --create exited {rc}: {tail(logp)}"}
    log(f"{broker.name}: ProducerPerformance {cfg.tools_records} x {TOOLS_RECORD_BYTES} B")
    rc, out = run_tool(java + ["org.apache.kafka.tools.ProducerPerformance", "--topic", TOOLS_TOPIC,
                               "--num-records", str(cfg.tools_records), "--record-size", str(TOOLS_RECORD_BYTES),
                               "--throughput", "-1",
                               "--command-property", f"bootstrap.servers={broker.bootstrap}",
                               *TOOLS_PRODUCER_PROPS], cfg.run_timeout_s, logp)
    producer = parse_producer_performance(out)
    result["producer"] = producer if (rc == 0 and producer) else {"error": f"ProducerPerformance exited {rc}: {tail(logp)}"}
    if producer:
        log(f"  {producer['line']}")
    log(f"{broker.name}: ConsumerPerformance {cfg.tools_records} records")
    rc, out = run_tool(java + ["org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", broker.bootstrap,
                               "--topic", TOOLS_TOPIC, "--num-records", str(cfg.tools_records),
                               "--timeout", "60000"], cfg.run_timeout_s, logp)
    consumer = parse_consumer_performance(out)
    result["consumer"] = consumer if (rc == 0 and consumer) else {"error": f"ConsumerPerformance exited {rc}: {tail(logp)}"}
    if consumer:
        log(f"  {consumer['line']}")
    return result


def kafka_tools_fixed_rate(cfg, broker, rate):
    """ProducerPerformance throttled to `rate` records/s: its latency percentiles at a load both sustain."""
    logp = os.path.join(cfg.out, f"kafka-tools-{broker.name}.log")
    java = pinned(cfg.client_cpus, cfg.java_base(heap="1g"))
    topic = TOOLS_TOPIC + "-fixed"
    rc, _ = run_tool(java + ["org.apache.kafka.tools.TopicCommand", "--bootstrap-server", broker.bootstrap,
                             "--create", "--topic", topic, "--partitions", str(TOOLS_PARTITIONS),
                             "--replication-factor", "1"], 120, logp)
    if rc != 0:
        return {"error": f"TopicCommand --create exited {rc}: {tail(logp)}"}
    records = max(1000, int(rate * cfg.tools_fixed_s))
    log(f"{broker.name}: ProducerPerformance {records} records at {int(rate)}/s")
    rc, out = run_tool(java + ["org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
                               "--num-records", str(records), "--record-size", str(TOOLS_RECORD_BYTES),
                               "--throughput", str(int(rate)),
                               "--command-property", f"bootstrap.servers={broker.bootstrap}",
                               *TOOLS_PRODUCER_PROPS], cfg.run_timeout_s, logp)
    producer = parse_producer_performance(out)
    if rc != 0 or not producer:
        return {"error": f"ProducerPerformance exited {rc}: {tail(logp)}"}
    log(f"  {producer['line']}")
    return producer


def tail(path, lines=3):
    try:
        with open(path, errors="replace") as f:
            text = [line.rstrip() for line in f.readlines() if line.strip()]
        return " | ".join(text[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------------
# Baselines.

def read_tune(path):
    """(seq_write_mib_s, fdatasync_per_s) from `spate tune --out` TOML. The key names are owned by
    tuning/ (see tuning/README.md); this is the only place that knows them."""
    import tomllib
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    flat = {}

    def walk(prefix, node):
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(name, value)
            elif isinstance(value, (int, float)):
                flat[name] = float(value)
    walk("", doc)

    def pick(patterns):
        for pattern in patterns:
            for name, value in flat.items():
                if re.search(pattern, name):
                    return value, name
        return None, None
    seq, seq_key = pick([r"^disk_measured\.seq_write_1m_mib_s$", r"seq\w*write\w*mib", r"write\w*mib_?per_?s", r"direct\w*mib", r"bandwidth\w*mib"])
    sync, sync_key = pick([r"^disk_measured\.fdatasync_per_s$", r"fdatasync\w*per_?s", r"fsync\w*per_?s", r"sync\w*rate", r"flush\w*per_?s"])
    return seq, sync, {"seq_write_key": seq_key, "fdatasync_key": sync_key}


def baseline_disk(cfg):
    base = {}
    disk_dir = os.path.join(cfg.bench_dir, "baseline")
    shutil.rmtree(disk_dir, ignore_errors=True)
    os.makedirs(disk_dir)
    logp = os.path.join(cfg.out, "baselines.log")
    tune_out = os.path.join(cfg.out, "tune.toml")
    rc, _ = run_tool(pinned(cfg.broker_cpus, [cfg.spate_bin, "tune", "--data-dir", disk_dir, "--out", tune_out,
                                              *(["--quick"] if cfg.quick else [])]), 600, logp)
    if rc == 0 and os.path.exists(tune_out):
        try:
            seq, sync, keys = read_tune(tune_out)
            if seq:
                base["seq_write_mib_s"] = {"value": seq, "source": f"spate tune ({keys['seq_write_key']})"}
            if sync:
                base["fdatasync_per_s"] = {"value": sync, "source": f"spate tune ({keys['fdatasync_key']})"}
        except Exception as error:  # noqa: BLE001 - any parse problem falls back to the raw tools
            log(f"cannot read {tune_out}: {error}")
    else:
        log("spate tune not available: measuring the disk with dd and a python fdatasync loop")
    if "seq_write_mib_s" not in base:
        count = cfg.dd_mib
        target = os.path.join(disk_dir, "dd.bin")
        argv = pinned(cfg.broker_cpus, ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={count}",
                                        "oflag=direct", "conv=fdatasync"])
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True)
        elapsed = time.monotonic() - started
        with open(logp, "a") as f:
            f.write(" ".join(argv) + "\n" + proc.stderr)
        match = re.search(r"(\d+) bytes .* copied, ([\d.]+) s", proc.stderr)
        if proc.returncode == 0 and match:
            mib_s = int(match.group(1)) / (1 << 20) / float(match.group(2))
        else:
            mib_s = count / elapsed if proc.returncode == 0 else None
        if mib_s:
            base["seq_write_mib_s"] = {"value": mib_s,
                                       "source": f"dd bs=1M count={count} oflag=direct (fallback)"}
    # Always also the plain-file view: append ~1 KiB and fdatasync, as a naive log would (the file
    # grows, so every fdatasync also commits the size change to the filesystem journal).
    if True:
        code = ("import os,sys,time\n"
                "fd=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT|os.O_APPEND,0o644)\n"
                "buf=b'x'*1100\nend=time.monotonic()+float(sys.argv[2]);n=0\n"
                "while time.monotonic()<end:\n os.write(fd,buf);os.fdatasync(fd);n+=1\n"
                "print(n/float(sys.argv[2]))\n")
        target = os.path.join(disk_dir, "fdatasync.bin")
        proc = subprocess.run(pinned(cfg.broker_cpus, [sys.executable, "-c", code, target, str(cfg.sync_s)]),
                              capture_output=True, text=True)
        if proc.returncode == 0:
            entry = {"value": float(proc.stdout.strip()),
                     "source": f"python: append 1100 B + fdatasync, {cfg.sync_s} s, growing file"}
            base["append_fdatasync_per_s"] = entry
            if "fdatasync_per_s" not in base:
                base["fdatasync_per_s"] = {**entry, "source": entry["source"] + " (fallback: no spate tune)"}
    shutil.rmtree(disk_dir, ignore_errors=True)
    return base


def baseline_loopback(cfg):
    if not cfg.spate_bench_bin:
        return {}
    argv = [cfg.spate_bench_bin, "loopback", "--duration-s", str(cfg.loopback_s), "--json"]
    if cfg.broker_cpus.isdigit() and cfg.client_cpus.isdigit():
        # The sender plays the broker, the receiver the client: the same CPUs as in the runs.
        argv += ["--sender-cpu", cfg.broker_cpus, "--receiver-cpu", cfg.client_cpus]
    argv = pinned(f"{cfg.broker_cpus},{cfg.client_cpus}", argv)
    rc, out = run_tool(argv, 120, os.path.join(cfg.out, "baselines.log"))
    result = last_json_line(out, "spate_bench")
    if rc == 0 and result and result.get("mib_per_s"):
        return {"loopback_tcp_mib_s": {"value": float(result["mib_per_s"]),
                                       "source": f"spate-bench loopback, {cfg.loopback_s} s, cpus "
                                                 f"{cfg.broker_cpus}+{cfg.client_cpus}"}}
    log(f"spate-bench loopback failed (rc {rc})")
    return {}


# --------------------------------------------------------------------------------------------------
# Ratios, tables, files.

def dig(obj, *path):
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, (int, float)) else None


def build_ratios(results):
    s, k, b = results["spate"], results["kafka"], results["baselines"]
    rows = []

    def row(name, unit, spate, other, other_name, target, higher_is_better=True, note=""):
        ratio = (spate / other) if (spate is not None and other) else None
        met = None
        if ratio is not None and target is not None:
            met = ratio >= target if higher_is_better else ratio <= target
        rows.append({"name": name, "unit": unit, "spate": spate, "other": other, "other_name": other_name,
                     "ratio": ratio, "target": target, "higher_is_better": higher_is_better, "met": met,
                     "note": note})

    for workload, target in [("max-1k-1p", 2.0), ("max-1k-16p", 2.0), ("max-100b-1p", None), ("max-100b-16p", None)]:
        row(f"produce {workload} (spate-bench)", "msg/s", dig(s, workload, "produce", "msgs_per_s"),
            dig(k, workload, "produce", "msgs_per_s"), "Kafka", target)
    row("produce 1 KiB acks=1 max (ProducerPerformance)", "msg/s", dig(s, "tools", "producer", "msgs_per_s"),
        dig(k, "tools", "producer", "msgs_per_s"), "Kafka", 2.0)
    rate = results.get("latency_rate")
    rate_note = f"at {int(rate)} msg/s" if rate else ""
    row("produce p99 latency-1k-16p (spate-bench)", "ms", dig(s, "latency-1k-16p", "produce", "latency_ms", "p99"),
        dig(k, "latency-1k-16p", "produce", "latency_ms", "p99"), "Kafka", 1 / 3, False, rate_note)
    tools_rate = results.get("tools_rate")
    row("produce p99 at fixed rate (ProducerPerformance)", "ms", dig(s, "tools_fixed", "latency_ms", "p99"),
        dig(k, "tools_fixed", "latency_ms", "p99"), "Kafka", 1 / 3, False,
        f"at {int(tools_rate)} msg/s" if tools_rate else "")
    row("e2e p99 latency-1k-16p (spate-bench)", "ms", dig(s, "latency-1k-16p", "e2e_latency_ms", "p99"),
        dig(k, "latency-1k-16p", "e2e_latency_ms", "p99"), "Kafka", None, False, rate_note)
    row("consumer catch-up catchup-1k-16p (spate-bench)", "MiB/s", dig(s, "catchup-1k-16p", "consume", "mib_per_s"),
        dig(k, "catchup-1k-16p", "consume", "mib_per_s"), "Kafka", 1.5)
    row("consumer catch-up (ConsumerPerformance, fetch rate)", "MiB/s",
        dig(s, "tools", "consumer", "fetch_mib_per_s"), dig(k, "tools", "consumer", "fetch_mib_per_s"), "Kafka", 1.5,
        note="excludes group join")
    row("consumer catch-up (ConsumerPerformance, overall)", "MiB/s",
        dig(s, "tools", "consumer", "mib_per_s"), dig(k, "tools", "consumer", "mib_per_s"), "Kafka", None,
        note="includes group join")
    row("Spate catch-up / loopback TCP", "MiB/s", dig(s, "catchup-1k-16p", "consume", "mib_per_s"),
        dig(b, "loopback_tcp_mib_s", "value"), "loopback", 0.5)
    row("Spate flush-1k-1p / raw fdatasync rate", "msg/s", dig(s, "flush-1k-1p", "produce", "msgs_per_s"),
        dig(b, "fdatasync_per_s", "value"), "fdatasync/s", 0.7)
    row("Kafka flush-1k-1p / raw fdatasync rate (context)", "msg/s", dig(k, "flush-1k-1p", "produce", "msgs_per_s"),
        dig(b, "fdatasync_per_s", "value"), "fdatasync/s", None)
    # The same against appends that grow a file, as every log's writes do (context for the row above).
    row("Spate flush-1k-1p / append+fdatasync rate (context)", "msg/s", dig(s, "flush-1k-1p", "produce", "msgs_per_s"),
        dig(b, "append_fdatasync_per_s", "value"), "append+fdatasync/s", None)
    return rows


def fmt_num(value, unit=""):
    if value is None:
        return "n/a"
    if unit == "ms" or abs(value) < 100:
        return f"{value:.2f}"
    return f"{value:,.0f}"


def fmt_target(row):
    if row["target"] is None:
        return "-"
    sign = ">=" if row["higher_is_better"] else "<="
    target = row["target"]
    text = "1/3" if abs(target - 1 / 3) < 1e-9 else (f"{target * 100:.0f}%" if target < 1 else f"{target:g}x")
    return f"{sign} {text}"


def fmt_ratio(row):
    ratio = row["ratio"]
    if ratio is None:
        return "n/a"
    return f"{ratio * 100:.0f}%" if row["other_name"] in ("loopback", "fdatasync/s") else f"{ratio:.2f}x"


def fmt_met(row):
    return {True: "met", False: "MISSED", None: "-"}[row["met"]]


def ratio_table(rows):
    header = ["metric", "unit", "Spate", "vs", "ratio", "target", "result", "note"]
    body = [[r["name"], r["unit"], fmt_num(r["spate"], r["unit"]),
             f"{fmt_num(r['other'], r['unit'])} ({r['other_name']})", fmt_ratio(r), fmt_target(r), fmt_met(r),
             r["note"]] for r in rows]
    return header, body


def workload_table(results, workloads):
    header = ["workload", "broker", "produce msg/s", "produce MiB/s", "p50 ms", "p99 ms", "p99.9 ms",
              "errors", "consume MiB/s", "e2e p99 ms"]
    body = []
    for workload in workloads:
        for broker in ("spate", "kafka"):
            result = results[broker].get(workload)
            if result is None:
                continue
            if "error" in result:
                body.append([workload, broker, result["error"]] + [""] * 7)
                continue
            body.append([workload, broker, fmt_num(dig(result, "produce", "msgs_per_s")),
                         fmt_num(dig(result, "produce", "mib_per_s")),
                         fmt_num(dig(result, "produce", "latency_ms", "p50"), "ms"),
                         fmt_num(dig(result, "produce", "latency_ms", "p99"), "ms"),
                         fmt_num(dig(result, "produce", "latency_ms", "p999"), "ms"),
                         str(dig(result, "produce", "errors") or 0),
                         fmt_num(dig(result, "consume", "mib_per_s")),
                         fmt_num(dig(result, "e2e_latency_ms", "p99"), "ms")])
    return header, body


def tool_lines(results):
    """Kafka's tools' own summary lines, verbatim, per broker."""
    lines = []
    for broker in ("spate", "kafka"):
        tools = results[broker].get("tools") or {}
        for label, value in (("ProducerPerformance max", tools.get("producer")),
                             ("ConsumerPerformance", tools.get("consumer")),
                             (f"ProducerPerformance at {results.get('tools_rate')}/s", results[broker].get("tools_fixed"))):
            if value:
                lines.append((broker, label, value.get("line") or value.get("error", "")))
    return lines


def text_table(header, body):
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(header))]
    lines.append("  ".join("-" * width for width in widths))
    for row in body:
        lines.append("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def md_table(header, body):
    esc = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(cell) for cell in row) + " |" for row in body]
    return "\n".join(lines)


def machine_info(cfg):
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    def disk_of(device):
        parent = cmd(["lsblk", "-no", "PKNAME", device]).splitlines()
        return f"/dev/{parent[0].strip()}" if parent and parent[0].strip() else device

    lscpu = cmd(["lscpu"])
    model = re.search(r"Model name:\s*(.+)", lscpu)
    source = " ".join(cmd(["findmnt", "-no", "SOURCE,FSTYPE", "--target", cfg.bench_dir]).split())
    device = source.split()[0] if source else ""
    disk = ""
    if device.startswith("/dev/"):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', cmd(["lsblk", "-dnP", "-o", "NAME,MODEL,SIZE,ROTA",
                                                          disk_of(device)])))
        if fields:
            disk = (f"{fields.get('NAME', '')} {fields.get('MODEL', '').strip() or '(no model)'} "
                    f"{fields.get('SIZE', '')}, {'rotational' if fields.get('ROTA') == '1' else 'non-rotational'}")
    commit = cmd(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"])
    if cmd(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]):
        commit += "+dirty"
    mem = re.search(r"MemTotal:\s+(\d+) kB", open("/proc/meminfo").read())
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gib": round(int(mem.group(1)) / (1 << 20), 1) if mem else None,
        "kernel": platform.release(),
        "bench_dir_mount": source,
        "disk": disk or device,
        "git_commit": commit,
        "java": (cmd(["java", "-version"]) or subprocess.run(["java", "-version"], capture_output=True,
                                                               text=True).stderr).splitlines()[0],
        "kafka_version": cfg.kafka_version,
    }


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_outputs(cfg, results, rows, workloads):
    meta = results["meta"]
    with open(os.path.join(cfg.out, "results.json"), "w") as f:
        json.dump({**results, "ratios": rows}, f, indent=2, sort_keys=False)
    rh, rb = ratio_table(rows)
    wh, wb = workload_table(results, workloads)
    base_rows = [[name, fmt_num(entry["value"]), entry["source"]] for name, entry in results["baselines"].items()]
    m = meta["machine"]
    md = [
        f"### Spate vs Apache Kafka {m['kafka_version']} — {meta['date']}{' (quick smoke run)' if cfg.quick else ''}",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"disk {m['disk']} ({m['bench_dir_mount']})",
        f"- Spate commit {m['git_commit']}"
        + (" (DEBUG build of spate: numbers are not meaningful)" if "/debug/" in str(meta.get("spate_bin", "")) else "")
        + (f", `spate serve` extra flags `{' '.join(meta['spate_extra_args'])}`" if meta.get("spate_extra_args") else "")
        + f"; Kafka {m['kafka_version']} single-node KRaft from Maven Central, "
        f"heap {cfg.kafka_heap}, otherwise defaults; {m['java']}",
        f"- Brokers pinned to CPU {cfg.broker_cpus} (one at a time), load generators to CPU {cfg.client_cpus}; "
        f"both brokers' data under {cfg.bench_dir}",
        f"- Reproduce: `bench/compare/run.sh{' --quick' if cfg.quick else ''}"
        f"{' --workloads ' + ','.join(workloads) if workloads != ALL_WORKLOADS else ''}`",
        "",
        "#### Targets",
        "",
        md_table(rh, rb),
        "",
        "#### Raw baselines (same run)",
        "",
        md_table(["baseline", "value", "how"], base_rows),
        "",
        "#### Per workload (spate-bench)",
        "",
        md_table(wh, wb),
        "",
        "#### Kafka's own tools (" + ", ".join(TOOLS_PRODUCER_PROPS) + f"; {cfg.tools_records} records of "
        f"{TOOLS_RECORD_BYTES} B, topic of {TOOLS_PARTITIONS} partitions; ConsumerPerformance CSV: start, end, MB, "
        "MB/s, msgs, msgs/s, rebalance ms, fetch ms, fetch MB/s, fetch msgs/s)",
        "",
        *[f"- {broker}, {label}: `{line}`" for broker, label, line in tool_lines(results)],
        "",
    ]
    with open(os.path.join(cfg.out, "results.md"), "w") as f:
        f.write("\n".join(md))
    print()
    print(f"Spate vs Apache Kafka {m['kafka_version']}  ({meta['date']}, commit {m['git_commit']}, "
          f"{m['cpu_model']}, {m['kernel']})")
    print()
    print(text_table(rh, rb))
    print()
    print("Baselines:")
    print(text_table(["baseline", "value", "how"], base_rows))
    print()
    print(text_table(wh, wb))
    print()
    print("Kafka's own tools:")
    for broker, label, line in tool_lines(results):
        print(f"  {broker:5}  {label}: {line}")
    print()
    print(f"Results: {os.path.join(cfg.out, 'results.json')}  {os.path.join(cfg.out, 'results.md')}")


# --------------------------------------------------------------------------------------------------
# Configuration and the run.

class Config:
    def __init__(self, args):
        env = os.environ.get
        self.quick = args.quick
        self.out = os.path.abspath(args.out or os.path.join(
            ROOT, "target", "bench-results", datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")))
        self.bench_dir = os.path.abspath(env("BENCH_DIR") or os.path.join(ROOT, "target", "bench-data"))
        self.broker_cpus = env("BROKER_CPUS", "0")
        self.client_cpus = env("CLIENT_CPUS", "1")
        self.spate_bin = os.path.abspath(env("SPATE_BIN") or os.path.join(ROOT, "target", "release", "spate"))
        bench_bin = env("SPATE_BENCH_BIN") or os.path.join(ROOT, "target", "release", "spate-bench")
        self.spate_bench_bin = os.path.abspath(bench_bin) if os.access(bench_bin, os.X_OK) else None
        self.spate_port = int(env("SPATE_PORT", "29092"))
        self.kafka_port = int(env("KAFKA_PORT", "29192"))
        self.kafka_controller_port = int(env("KAFKA_CONTROLLER_PORT", "29193"))
        self.spate_extra_args = (env("SPATE_EXTRA_ARGS") or "").split()
        self.kafka_heap = env("KAFKA_HEAP", "2g")
        self.kafka_lib = env("KAFKA_LIB") or os.path.join(ROOT, ".ci", "cache", "kafka-bench", "lib")
        self.kafka_classpath = os.path.join(self.kafka_lib, "*")
        jars = glob.glob(os.path.join(self.kafka_lib, "kafka-clients-*.jar"))
        self.kafka_version = re.sub(r"^kafka-clients-|\.jar$", "", os.path.basename(jars[0])) if jars else "?"
        self.keep_data = env("KEEP_DATA") == "1"
        # Durations: the workload files' own unless overridden; --quick makes everything tiny.
        self.duration_s = env("DURATION_S") or ("3" if self.quick else None)
        self.warmup_s = env("WARMUP_S") or ("1" if self.quick else None)
        self.tools_records = int(env("TOOLS_RECORDS") or (100_000 if self.quick else 1_000_000))
        self.tools_fixed_s = 3 if self.quick else 30
        self.run_timeout_s = 180 if self.quick else 900
        self.dd_mib = 256 if self.quick else 2048
        self.sync_s = 2 if self.quick else 10
        self.loopback_s = 2 if self.quick else 10

    def duration_args(self, workload):
        argv = ["--cpus", self.client_cpus]
        if self.quick and workload.startswith("catchup"):
            argv += ["--backlog-bytes", str(64 << 20)]
        elif env_backlog := os.environ.get("BACKLOG_BYTES"):
            argv += ["--backlog-bytes", env_backlog]
        if self.duration_s:
            argv += ["--duration-s", self.duration_s]
        if self.warmup_s:
            argv += ["--warmup-s", self.warmup_s]
        return argv

    def java_base(self, heap):
        argv = ["java"]
        if heap:
            argv.append(f"-Xmx{heap}")
        return argv + ["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", self.kafka_classpath]


def broker_round(cfg, broker, workloads, results, with_tools):
    """One broker's turn: start it fresh, run `workloads` (and Kafka's tools), stop it."""
    try:
        broker.start()
    except RuntimeError as error:
        log(str(error))
        for workload in workloads:
            results[broker.name][workload] = {"error": f"{broker.name} did not start"}
        broker.stop()
        return
    try:
        for workload in workloads:
            rate = results.get("latency_rate") if workload == "latency-1k-16p" else None
            results[broker.name][workload] = spate_bench(cfg, broker, workload, rate)
        if with_tools == "max":
            results[broker.name]["tools"] = kafka_tools(cfg, broker)
        elif with_tools == "fixed" and results.get("tools_rate"):
            results[broker.name]["tools_fixed"] = kafka_tools_fixed_rate(cfg, broker, results["tools_rate"])
    finally:
        broker.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny durations: a smoke test")
    parser.add_argument("--workloads", help="comma-separated subset of: " + ",".join(ALL_WORKLOADS))
    parser.add_argument("--out", help="results directory (default target/bench-results/<UTC timestamp>)")
    parser.add_argument("--no-tools", action="store_true", help="skip Kafka's ProducerPerformance/ConsumerPerformance")
    parser.add_argument("--render", metavar="RESULTS_JSON",
                        help="only print the tables and rewrite results.md from an earlier run's results.json")
    args = parser.parse_args()
    if args.render:
        with open(args.render) as f:
            results = json.load(f)
        results.pop("ratios", None)
        meta = results["meta"]
        args.quick = meta.get("quick", False)
        args.out = args.out or os.path.dirname(os.path.abspath(args.render))
        cfg = Config(args)
        cfg.broker_cpus, cfg.client_cpus, cfg.bench_dir = meta["broker_cpus"], meta["client_cpus"], meta["bench_dir"]
        cfg.tools_records = meta.get("kafka_tools_records", cfg.tools_records)
        write_outputs(cfg, results, build_ratios(results), meta["workloads"])
        return
    workloads = args.workloads.split(",") if args.workloads else list(ALL_WORKLOADS)
    unknown = [w for w in workloads if w not in ALL_WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; known: {ALL_WORKLOADS}")

    cfg = Config(args)
    os.makedirs(cfg.out, exist_ok=True)
    os.makedirs(cfg.bench_dir, exist_ok=True)
    # Private copies of the binaries: a cargo build elsewhere in the tree during the run must not
    # change what the second round runs.
    bin_dir = os.path.join(cfg.bench_dir, "bin")
    shutil.rmtree(bin_dir, ignore_errors=True)
    os.makedirs(bin_dir)
    for attr in ("spate_bin", "spate_bench_bin"):
        path = getattr(cfg, attr)
        if path and os.access(path, os.X_OK):
            copy = os.path.join(bin_dir, os.path.basename(path))
            shutil.copy2(path, copy)
            setattr(cfg, attr, copy)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    if not os.access(cfg.spate_bin, os.X_OK):
        sys.exit(f"no spate binary at {cfg.spate_bin}")
    if not glob.glob(os.path.join(cfg.kafka_lib, "kafka_2.13-*.jar")):
        sys.exit(f"no Kafka jars in {cfg.kafka_lib}; run bench/compare/run.sh (it fetches them)")
    if not cfg.spate_bench_bin:
        log("no spate-bench binary: spate-bench workloads and the loopback baseline are skipped")
    log(f"results in {cfg.out}; data in {cfg.bench_dir}; broker cpus {cfg.broker_cpus}, client cpus {cfg.client_cpus}")

    started = time.monotonic()
    results = {"meta": {"date": utc_now(), "quick": cfg.quick, "workloads": workloads,
                        "broker_cpus": cfg.broker_cpus, "client_cpus": cfg.client_cpus,
                        "bench_dir": cfg.bench_dir, "machine": machine_info(cfg),
                        "spate_bin": os.environ.get("SPATE_BIN") or cfg.spate_bin,
                        "spate_bench_bin": os.environ.get("SPATE_BENCH_BIN") or cfg.spate_bench_bin,
                        "spate_extra_args": cfg.spate_extra_args,
                        "kafka_tools_producer_props": TOOLS_PRODUCER_PROPS,
                        "kafka_tools_records": cfg.tools_records},
               "baselines": {}, "spate": {}, "kafka": {}}

    # Raw baselines first, with nothing else running.
    log("baselines: disk")
    results["baselines"].update(baseline_disk(cfg))
    log("baselines: loopback TCP")
    results["baselines"].update(baseline_loopback(cfg))
    for name, entry in results["baselines"].items():
        log(f"  {name} = {entry['value']:.1f} ({entry['source']})")

    # Round 1: everything except the fixed-rate latency workload, whose rate needs both brokers'
    # max-1k-16p throughput first.
    first = [w for w in workloads if w != "latency-1k-16p"]
    if "latency-1k-16p" in workloads and "max-1k-16p" not in first:
        first.insert(0, "max-1k-16p")
    brokers = [Spate(cfg), Kafka(cfg)]
    for broker in brokers:
        broker_round(cfg, broker, first, results, with_tools=None if args.no_tools else "max")

    # Round 2: latency at half the smaller of the two maxima, on each broker in turn.
    maxima = [dig(results[b.name], "max-1k-16p", "produce", "msgs_per_s") for b in brokers]
    tools_maxima = [dig(results[b.name], "tools", "producer", "msgs_per_s") for b in brokers]
    if all(maxima):
        results["latency_rate"] = int(min(maxima) / 2)
    # ProducerPerformance gets its own rate, half the smaller of its own two maxima: the Java client on
    # one core may top out below what spate-bench pushes, and a rate the generator cannot keep up
    # with measures the generator.
    if all(tools_maxima):
        results["tools_rate"] = int(min(tools_maxima) / 2)
    if "latency-1k-16p" in workloads and (results.get("latency_rate") or results.get("tools_rate")):
        log(f"round 2: fixed rate {results.get('latency_rate')} msg/s (spate-bench), "
            f"{results.get('tools_rate')} msg/s (ProducerPerformance)")
        for broker in brokers:
            broker_round(cfg, broker, ["latency-1k-16p"] if results.get("latency_rate") else [], results,
                         with_tools=None if args.no_tools else "fixed")
    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)

    rows = build_ratios(results)
    write_outputs(cfg, results, rows, workloads)


if __name__ == "__main__":
    main()
