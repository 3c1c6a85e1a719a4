#!/usr/bin/env bash
# Produce latency with the log cleaner idle and busy (issue 6): the same background load (1 KiB keyed
# records at 15k msg/s) goes once into a delete-policy topic (cleaner idle) and once into a compacted
# topic with 1 MiB segments and min.cleanable.dirty.ratio=0.01 (cleaner rewriting segments
# continuously), while a probe measures produce-ack latency of 2000 msg/s on another topic. Broker on
# CPU 0, generators on CPU 1, release build, cleaner backoff 500 ms.
#
#   bench/compare/cleaner.sh            prints a table and writes target/bench-cleaner/result.json
#   ROUNDS=3 bench/compare/cleaner.sh   more alternating idle/busy pairs (default 2); medians are compared
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
  local policy=$1 round=$2
  local data=$out/data-$policy-$round
  RUST_LOG=info taskset -c 0 "$spate" serve --config "$out/spate.toml" --cores 0, --listen "127.0.0.1:$port" \
    --admin-listen off --data-dir "$data" >"$out/broker-$policy-$round.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  # --keep-topic: deleting ~700 MB of segments at the end must not overlap the probe.
  taskset -c 1 "$spate" bench run --bootstrap "127.0.0.1:$port" --workload "bench/workloads/cleaner-load-$policy.toml" \
    --keep-topic --json --quiet >"$out/load-$policy-$round.json" &
  local load_pid=$!
  # Let dirty segments pile up so the cleaner is busy for the whole probe.
  sleep 8
  taskset -c 1 "$spate" bench run --bootstrap "127.0.0.1:$port" --workload bench/workloads/cleaner-probe.toml \
    --json --quiet >"$out/probe-$policy-$round.json"
  wait "$load_pid"
  kill -TERM "$broker_pid"
  wait "$broker_pid" || true
  broker_pid=""
  rm -rf "$data"
}

rounds=${ROUNDS:-2}
for round in $(seq "$rounds"); do
  scenario delete "$round"
  scenario compact "$round"
done

python3 - "$out" "$rounds" <<'EOF'
import json, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def last_json(path):
    return json.loads([l for l in open(path) if l.startswith("{")][-1])
rows = []
for round_ in range(1, rounds + 1):
    for policy, name in (("delete", "idle"), ("compact", "busy")):
        probe = last_json(f"{out}/probe-{policy}-{round_}.json")["produce"]
        load = last_json(f"{out}/load-{policy}-{round_}.json")["produce"]
        log = open(f"{out}/broker-{policy}-{round_}.log").read()
        rows.append(dict(cleaner=name, round=round_, rounds=len(re.findall("cleaned a compacted log", log)),
                         rewritten_mib=sum(int(m) for m in re.findall(r"bytes_read=(\d+)", log)) / 2**20,
                         load_rate=load["msgs_per_s"], probe_rate=probe["msgs_per_s"], latency=probe["latency_ms"]))
print(f"{'cleaner':8} {'run':>3} {'cleanings':>9} {'MiB rewritten':>13} {'load msg/s':>10} {'probe msg/s':>11} "
      f"{'p50 ms':>7} {'p99 ms':>8} {'p99.9 ms':>8} {'max ms':>8}")
for r in rows:
    l = r["latency"]
    print(f"{r['cleaner']:8} {r['round']:>3} {r['rounds']:>9} {r['rewritten_mib']:>13.1f} {r['load_rate']:>10.0f} "
          f"{r['probe_rate']:>11.0f} {l['p50']:>7.2f} {l['p99']:>8.2f} {l['p999']:>8.2f} {l['max']:>8.2f}")
median = {name: statistics.median(r["latency"]["p99"] for r in rows if r["cleaner"] == name) for name in ("idle", "busy")}
ratio = median["busy"] / max(median["idle"], 1e-9)
print(f"median p99: idle {median['idle']:.2f} ms, busy {median['busy']:.2f} ms; busy / idle {ratio:.2f}")
json.dump({"rows": rows, "median_p99_ms": median, "p99_busy_over_idle": ratio}, open(f"{out}/result.json", "w"), indent=1)
EOF
