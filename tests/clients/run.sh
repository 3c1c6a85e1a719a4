#!/usr/bin/env bash
# Runs the real-client suites, each against a fresh `spate serve` on a free 127.0.0.1 port with an
# empty data directory, and prints one summary line per suite. Exit status: 0 when every suite that ran
# passed, 1 otherwise, 2 on bad usage.
#
#   tests/clients/run.sh [SUITE...]     SUITE: python-confluent kafka-python java go codecs (default: all)
#
# Install the clients first: scripts/install-clients.sh. The broker is the debug build of
# `cargo build -p net --bin spate` (built once here; `cargo test` leaves the same binary).
# Environment: SPATE_BIN (a broker binary to use instead of building one), SPATE_SUITE_TIMEOUT
# (seconds per suite, default 240), SPATE_LOG (the broker's RUST_LOG, default info), SPATE_KEEP_LOGS=1
# (keep a passing suite's broker log and data directory too; a failing suite's are always kept and
# named in the summary). The suites get SPATE_BOOTSTRAP (the broker's HOST:PORT) and SPATE_BIN (the
# binary, for tests that start, kill and restart brokers of their own).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
cache=$root/.ci/cache
all_suites=(python-confluent kafka-python java go codecs)
# 240: python-confluent (with test_group_failover.py's session timeouts and broker restarts) takes
# 80-120 s on a loaded 2-core machine.
suite_timeout=${SPATE_SUITE_TIMEOUT:-240}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=("${all_suites[@]}")
for suite in "${suites[@]}"; do
  case " ${all_suites[*]} " in
    *" $suite "*) ;;
    *) echo "run.sh: unknown suite '$suite' (choose from: ${all_suites[*]})" >&2; exit 2 ;;
  esac
done

if [ -n "${SPATE_BIN:-}" ]; then
  spate=$SPATE_BIN
else
  echo "run.sh: building the broker (cargo build -p net --bin spate)"
  cargo build -q -p net --bin spate
  spate=${CARGO_TARGET_DIR:-$root/target}/debug/spate
fi
[ -x "$spate" ] || { echo "run.sh: no broker binary at $spate" >&2; exit 1; }

broker_pid=""
workdir=""
stop_broker() {
  # Stops the broker: SIGTERM, up to 10 s for a clean exit, then SIGKILL. Sets broker_status.
  broker_status=""
  [ -n "$broker_pid" ] || return 0
  if kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid" 2>/dev/null || true
    for _ in $(seq 200); do
      kill -0 "$broker_pid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$broker_pid" 2>/dev/null; then
      kill -KILL "$broker_pid" 2>/dev/null || true
      broker_status="still running 10 s after SIGTERM; killed"
    fi
  fi
  local code=0
  wait "$broker_pid" 2>/dev/null || code=$?
  [ -n "$broker_status" ] || [ "$code" -eq 0 ] || broker_status="exited with status $code"
  broker_pid=""
}
cleanup() {
  stop_broker || true
  if [ -n "$workdir" ] && [ -z "${SPATE_KEEP_LOGS:-}" ]; then rm -rf "$workdir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_broker: a fresh broker in $workdir; sets broker_pid and port. Retries when the port was taken meanwhile.
start_broker() {
  local attempt
  for attempt in 1 2 3; do
    port=$(free_port)
    RUST_LOG=${SPATE_LOG:-info} "$spate" serve --listen "127.0.0.1:$port" --admin-listen 127.0.0.1:0 --data-dir "$workdir/data" \
      </dev/null >"$workdir/broker.log" 2>&1 &
    broker_pid=$!
    # Up to 20 s for the port to accept.
    for _ in $(seq 400); do
      if ! kill -0 "$broker_pid" 2>/dev/null; then break; fi
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
      sleep 0.05
    done
    if kill -0 "$broker_pid" 2>/dev/null; then
      stop_broker
      echo "run.sh: the broker did not accept on 127.0.0.1:$port within 20 s" >&2
      return 1
    fi
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=""
    echo "run.sh: the broker exited during startup (attempt $attempt):" >&2
    tail -n 20 "$workdir/broker.log" >&2
    # Only a port taken between free_port and the bind is worth another try.
    grep -qi 'in use' "$workdir/broker.log" || return 1
  done
  return 1
}

suite_command() {
  local venv_python=$cache/venv/bin/python
  case $1 in
    python-confluent | kafka-python)
      local files=(test_confluent.py test_groups.py test_group_failover.py)
      [ "$1" = kafka-python ] && files=(test_kafka_python.py)
      [ -x "$venv_python" ] || { echo "missing $venv_python: run scripts/install-clients.sh python" >&2; return 1; }
      PYTHONDONTWRITEBYTECODE=1 timeout -k 5 "$suite_timeout" "$venv_python" -m pytest -q \
        --rootdir "$root/tests/clients/python" "${files[@]/#/$root/tests/clients/python/}"
      ;;
    codecs)
      # Cross-client: confluent-kafka, kafka-python and the Java client (CodecTool) through one pytest file.
      [ -x "$venv_python" ] || { echo "missing $venv_python: run scripts/install-clients.sh python" >&2; return 1; }
      [ -d "$cache/java/classes" ] || { echo "missing $cache/java: run scripts/install-clients.sh java" >&2; return 1; }
      PYTHONDONTWRITEBYTECODE=1 timeout -k 5 "$suite_timeout" "$venv_python" -m pytest -q \
        --rootdir "$root/tests/clients/python" "$root/tests/clients/python/test_codecs.py"
      ;;
    java)
      [ -d "$cache/java/classes" ] || { echo "missing $cache/java: run scripts/install-clients.sh java" >&2; return 1; }
      timeout -k 5 "$suite_timeout" java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$cache/java/classes:$cache/java/lib/*" dev.spate.clients.SpateClientCheck &&
        # The KIP-848 consumer protocol (group.protocol=consumer) against the same broker.
        timeout -k 5 "$suite_timeout" java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
          -cp "$cache/java/classes:$cache/java/lib/*" dev.spate.clients.ConsumerProtocolCheck
      ;;
    go)
      [ -x "$cache/bin/spate-franz" ] || { echo "missing $cache/bin/spate-franz: run scripts/install-clients.sh go" >&2; return 1; }
      timeout -k 5 "$suite_timeout" "$cache/bin/spate-franz"
      ;;
  esac
}

declare -A results
failed=0
for suite in "${suites[@]}"; do
  printf '\n-- client suite %s\n' "$suite"
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/spate-client-$suite.XXXXXX")
  started=$SECONDS
  if ! start_broker; then
    results[$suite]="FAIL (broker did not start; log: $workdir/broker.log)"
    workdir=""  # kept for a look
    failed=1
    continue
  fi
  status=0
  # SPATE_BIN too: test_group_failover.py kills and restarts a broker of its own.
  SPATE_BOOTSTRAP="127.0.0.1:$port" SPATE_BIN="$spate" suite_command "$suite" || status=$?
  broker_alive=yes
  kill -0 "$broker_pid" 2>/dev/null || broker_alive=no
  stop_broker
  elapsed=$((SECONDS - started))
  if [ "$status" -eq 0 ] && [ "$broker_alive" = yes ] && [ -z "$broker_status" ]; then
    results[$suite]="PASS (${elapsed} s)"
  else
    why="client exit status $status"
    [ "$status" -ne 124 ] && [ "$status" -ne 137 ] || why="timed out after $suite_timeout s"
    [ "$status" -ne 0 ] || why="client passed"
    [ "$broker_alive" = yes ] || why="$why; the broker died during the suite"
    [ -z "$broker_status" ] || why="$why; broker on SIGTERM: $broker_status"
    results[$suite]="FAIL ($why, ${elapsed} s; broker log: $workdir/broker.log)"
    echo "-- last lines of the broker log ($workdir/broker.log):"
    tail -n 40 "$workdir/broker.log" || true
    workdir=""  # kept for a look
    failed=1
  fi
  # A passing suite's directory goes unless SPATE_KEEP_LOGS is set.
  if [ -n "$workdir" ] && [ -z "${SPATE_KEEP_LOGS:-}" ]; then rm -rf "$workdir"; fi
  workdir=""
done

printf '\n== client suites\n'
for suite in "${suites[@]}"; do
  printf '%-18s %s\n' "$suite" "${results[$suite]}"
done
exit "$failed"
