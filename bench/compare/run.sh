#!/usr/bin/env bash
# Spate vs Apache Kafka, side by side, one command. See bench/compare/README.md.
#
#   bench/compare/run.sh [--quick] [--workloads a,b,c] [--out DIR] [--no-tools]
#
# Environment: SPATE_BIN / SPATE_BENCH_BIN (prebuilt binaries: skip the cargo build), BENCH_DIR (data
# of both brokers, default target/bench-data), BROKER_CPUS (default 0), CLIENT_CPUS (default 1),
# SPATE_PORT / KAFKA_PORT / KAFKA_CONTROLLER_PORT (29092 / 29192 / 29193), SPATE_EXTRA_ARGS, KAFKA_HEAP (default 2g), DURATION_S / WARMUP_S
# (override the workload files), BACKLOG_BYTES (catch-up backlog), TOOLS_RECORDS, KEEP_DATA=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

for arg in "$@"; do
  case "$arg" in
    -h|--help) exec python3 "$here/compare.py" --help ;;
  esac
done

for tool in java mvn taskset python3; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool is needed" >&2; exit 1; }
done

# 1. Binaries: one release build of both, unless prebuilt ones are given.
if [[ -z "${SPATE_BIN:-}" || -z "${SPATE_BENCH_BIN:-}" ]]; then
  packages=()
  [[ -z "${SPATE_BIN:-}" ]] && packages+=(-p net --bin spate)
  [[ -z "${SPATE_BENCH_BIN:-}" ]] && packages+=(-p bench --bin spate-bench)
  echo "[compare] cargo build --release ${packages[*]}" >&2
  cargo build --release "${packages[@]}"
fi
export SPATE_BIN="${SPATE_BIN:-$root/target/release/spate}"
export SPATE_BENCH_BIN="${SPATE_BENCH_BIN:-$root/target/release/spate-bench}"

# 2. Apache Kafka: the official jars (broker, StorageTool, ProducerPerformance, ConsumerPerformance)
#    and their runtime dependencies from Maven Central, once, into .ci/cache/kafka-bench/lib.
lib="$root/.ci/cache/kafka-bench/lib"
stamp="$root/.ci/cache/kafka-bench/pom.sha256"
want="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]] || ! ls "$lib"/kafka_2.13-*.jar >/dev/null 2>&1; then
  echo "[compare] fetching Apache Kafka jars from Maven Central into $lib" >&2
  rm -rf "$lib"
  (cd "$here" && mvn -B -q dependency:copy-dependencies)
  echo "$want" > "$stamp"
fi
export KAFKA_LIB="$lib"

# 3. The run. compare.py stops every broker and client it started on exit, error, Ctrl-C or
#    SIGTERM; this trap forwards a TERM/INT sent to run.sh itself.
child=""
forward() { [[ -n "$child" ]] && kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 130; }
trap forward INT TERM HUP
python3 "$here/compare.py" "$@" &
child=$!
wait "$child"
