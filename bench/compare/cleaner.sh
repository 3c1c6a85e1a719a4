#!/usr/bin/env bash
# Produce latency with the log cleaner idle and busy (issue 6): the same background load (1 KiB keyed
# records at 15k msg/s) goes once into a delete-policy topic (cleaner idle) and once into a compacted
# topic with 1 MiB segments and min.cleanable.dirty.ratio=0.01 (cleaner rewriting segments
# continuously), while a probe measures produce-ack latency of 2000 msg/s on another topic. Broker on
# CPU 0, generators on CPU 1, release build, cleaner backoff 500 ms.
#
#   bench/compare/cleaner.sh            prints a table and writes target/bench-cleaner/result.json
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --release -p net --bin spate
spate=${CARGO_TARGET_DIR:-target}/release/spate
out=${CARGO_TARGET_DIR:-target}/bench-cleaner
rm -rf "$out"
mkdir -p "$out"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'log_cleaner_backoff_ms = 500\n' >"$out/spate.toml"

broker_pid=""
cleanup() { [ -z "$broker_pid" ] || kill -9 "$broker_pid" 2>/dev/null || true; }
trap cleanup EXIT

scenario() {
  local policy=$1
  local data=$out/data-$policy
  RUST_LOG=info taskset -c 0 "$spate" serve --config "$out/spate.toml" --cores 0, --listen "127.0.0.1:$port" \
    --admin-listen off --data-dir "$data" >"$out/broker-$policy.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  taskset -c 1 "$spate" bench run --bootstrap "127.0.0.1:$port" --workload "bench/workloads/cleaner-load-$policy.toml" \
    --json --quiet >"$out/load-$policy.json" &
  local load_pid=$!
  # Let dirty segments pile up so the cleaner is busy for the whole probe.
  sleep 8
  taskset -c 1 "$spate" bench run --bootstrap "127.0.0.1:$port" --workload bench/workloads/cleaner-probe.toml \
    --json --quiet >"$out/probe-$policy.json"
  wait "$load_pid"
  kill -TERM "$broker_pid"
  wait "$broker_pid" || true
  broker_pid=""
}

scenario delete
scenario compact

python3 - "$out" <<'EOF'
import json, re, sys
out = sys.argv[1]
def last_json(path):
    return json.loads([l for l in open(path) if l.startswith("{")][-1])
rows = {}
for policy in ("delete", "compact"):
    probe = last_json(f"{out}/probe-{policy}.json")["produce"]
    load = last_json(f"{out}/load-{policy}.json")["produce"]
    log = open(f"{out}/broker-{policy}.log").read()
    rounds = len(re.findall("cleaned a compacted log", log))
    rewritten = sum(int(m) for m in re.findall(r"bytes_read=(\d+)", log))
    rows[policy] = dict(probe=probe["latency_ms"], probe_rate=probe["msgs_per_s"], load_rate=load["msgs_per_s"],
                        rounds=rounds, rewritten_mib=rewritten / 2**20)
print(f"{'cleaner':8} {'rounds':>6} {'MiB rewritten':>13} {'load msg/s':>10} {'probe msg/s':>11} "
      f"{'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} {'max ms':>7}")
for policy, name in (("delete", "idle"), ("compact", "busy")):
    r = rows[policy]
    l = r["probe"]
    print(f"{name:8} {r['rounds']:>6} {r['rewritten_mib']:>13.1f} {r['load_rate']:>10.0f} {r['probe_rate']:>11.0f} "
          f"{l['p50']:>7.2f} {l['p99']:>7.2f} {l['p999']:>8.2f} {l['max']:>7.2f}")
ratio = rows["compact"]["probe"]["p99"] / max(rows["delete"]["probe"]["p99"], 1e-9)
print(f"p99 busy / idle: {ratio:.2f}")
json.dump({"rows": rows, "p99_busy_over_idle": ratio}, open(f"{out}/result.json", "w"), indent=1)
EOF
