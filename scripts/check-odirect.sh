#!/usr/bin/env bash
# Proves that the partition log's .log segment files are opened with O_DIRECT on a real disk.
#
# Runs `append-bench --smoke` (appends through Log<DmaDisk>, rolls segments, closes and reopens a log) under
#   strace -f -e trace=openat,... -o TRACE
# and, while the smoke run holds its segments open, reads the kernel's open flags of every .log descriptor
# from /proc/PID/fdinfo.
#
# Why both: glommio opens DMA files through io_uring (IORING_OP_OPENAT), which strace cannot see, so the
# segment opens normally do not appear in the strace output at all. The fdinfo flags are the kernel's own
# record of how each file was opened and are the proof; the strace trace catches any segment opened with a
# plain openat(2) (e.g. a regression to std::fs), which must carry O_DIRECT too.
#
# Exits non-zero if any .log segment was opened without O_DIRECT, or if no open .log segment was seen.
# Env: SPATE_ODIRECT_DIR  parent directory for the scratch data dir (default: target/, on the project's disk).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v strace >/dev/null 2>&1; then
    echo "check-odirect: installing strace" >&2
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq strace) >&2
fi

# The debug build: `cargo test` already built it, so CI pays for no extra compile.
cargo build -q -p storage --example append-bench
bin="$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/examples/append-bench"
[ -x "$bin" ] || bin="$root/target/debug/examples/append-bench"

parent="${SPATE_ODIRECT_DIR:-$root/target}"
mkdir -p "$parent"
work="$(mktemp -d "$parent/odirect-check.XXXXXX")"
data="$work/data"
trace="$work/openat.strace"
log="$work/smoke.stderr"
hold="$work/hold"
pid_traced=""
cleanup() {
    rm -f "$hold"
    [ -n "$pid_traced" ] && wait "$pid_traced" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

tracer=(strace -f -e trace=open,openat,openat2,creat,io_uring_setup -o "$trace")
if ! strace -o /dev/null true >/dev/null 2>&1; then
    echo "check-odirect: WARNING: strace cannot trace here (ptrace not permitted); checking fdinfo only" >&2
    tracer=()
    : >"$trace"
fi

touch "$hold"
"${tracer[@]}" "$bin" --smoke --data-dir "$data" --hold-file "$hold" 2>"$log" &
pid_traced=$!

# Wait for the smoke run to hold its segments open.
for _ in $(seq 1 1200); do
    grep -q 'SMOKE-READY' "$log" 2>/dev/null && break
    if ! kill -0 "$pid_traced" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if ! grep -q 'SMOKE-READY' "$log"; then
    echo "check-odirect: FAIL: the smoke run did not get ready" >&2
    cat "$log" >&2
    exit 1
fi
ready="$(grep 'SMOKE-READY' "$log" | head -n 1)"
echo "check-odirect: $ready"
pid="$(sed -n 's/.*SMOKE-READY pid=\([0-9]*\).*/\1/p' <<<"$ready")"
o_direct="$(sed -n 's/.* o_direct=\(0[0-7]*\).*/\1/p' <<<"$ready")"
o_direct=$((o_direct)) # octal literal (leading 0) to a number
[ "$o_direct" -gt 0 ] || { echo "check-odirect: FAIL: no O_DIRECT value in: $ready" >&2; exit 1; }

failures=0
seen=0
echo "check-odirect: open .log segments of pid $pid (/proc/$pid/fdinfo flags, octal; O_DIRECT = $(printf '0%o' "$o_direct")):"
for fd in /proc/"$pid"/fd/*; do
    target="$(readlink "$fd" 2>/dev/null)" || continue
    case "$target" in
        "$data"/*.log) ;;
        *) continue ;;
    esac
    flags="$(awk '/^flags:/ { print $2 }' "/proc/$pid/fdinfo/${fd##*/}")"
    seen=$((seen + 1))
    if (((8#$flags) & o_direct)); then
        echo "  ok      fd ${fd##*/} flags $flags $target"
    else
        echo "  NO O_DIRECT  fd ${fd##*/} flags $flags $target"
        failures=$((failures + 1))
    fi
done

rm -f "$hold"
wait "$pid_traced" || { echo "check-odirect: FAIL: the smoke run failed" >&2; cat "$log" >&2; exit 1; }
pid_traced=""

echo "check-odirect: openat(2) calls on .log segments in the strace trace (io_uring opens do not appear):"
strace_logs="$(grep -E '"[^"]*\.log"' "$trace" | grep -v ENOENT || true)"
if [ -n "$strace_logs" ]; then
    echo "$strace_logs" | sed 's/^/  /'
    bad="$(echo "$strace_logs" | grep -v 'O_DIRECT' || true)"
    if [ -n "$bad" ]; then
        echo "check-odirect: FAIL: segment opened by openat(2) without O_DIRECT:" >&2
        echo "$bad" >&2
        failures=$((failures + 1))
    fi
    seen=$((seen + $(echo "$strace_logs" | wc -l)))
else
    echo "  (none: every segment was opened through io_uring; the rings, from strace:)"
    grep 'io_uring_setup' "$trace" | cut -c1-100 | sed 's/^/  /' || true
fi

if [ "$seen" -eq 0 ]; then
    echo "check-odirect: FAIL: no .log segment open was seen" >&2
    exit 1
fi
if [ "$failures" -gt 0 ]; then
    echo "check-odirect: FAIL: $failures .log segment open(s) without O_DIRECT" >&2
    exit 1
fi
echo "check-odirect: PASS: every .log segment open uses O_DIRECT ($seen seen)"
