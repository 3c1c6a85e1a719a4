#!/usr/bin/env python3
"""Spate under each built-in tuning profile, side by side: the same workloads against
`spate serve --profile latency|balanced|throughput`, broker and generator pinned as in compare.py.

    python3 bench/compare/profiles.py [--profiles latency,balanced,throughput] [--out DIR] [--quick]

Where a difference is expected:
- latency-1k-16p at a moderate fixed rate: the `latency` profile's idle shard polls before parking
  (spin_before_park 200 us vs 0), so produce and end-to-end latency should be lowest there;
- flush-concurrent-1k-1p (acks=1, flush.messages=1, 4 producers on one partition): the `throughput`
  profile's group-commit window lets one fdatasync cover more requests, so msgs/s should be highest
  there, at a latency cost.
Prints a table and writes profiles.json / profiles.md under --out. Uses SPATE_BIN and
SPATE_BENCH_BIN like run.sh (build them first: cargo build --release -p net -p bench).
"""

import argparse
import atexit
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (the same broker start/stop and spate-bench plumbing)

# (workload, fixed rate or None for max)
RUNS = [("latency-1k-16p", 20000), ("flush-concurrent-1k-1p", None)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="latency,balanced,throughput")
    parser.add_argument("--out", default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    atexit.register(compare.cleanup)  # no broker outlives the script, whatever ends it
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, compare.on_signal)
    cfg = compare.Config(argparse.Namespace(quick=args.quick, out=args.out))
    os.makedirs(cfg.out, exist_ok=True)
    base_extra = list(cfg.spate_extra_args)
    results = {}
    for profile in args.profiles.split(","):
        cfg.spate_extra_args = base_extra + ["--profile", profile]
        broker = compare.Spate(cfg)
        results[profile] = {}
        try:
            broker.start()
            for workload, rate in RUNS:
                results[profile][workload] = compare.spate_bench(cfg, broker, workload, rate)
        finally:
            broker.stop()
    rows = []
    for workload, rate in RUNS:
        for profile in results:
            r = results[profile].get(workload) or {}
            produce = r.get("produce") or {}
            lat = produce.get("latency_ms") or {}
            e2e = r.get("e2e_latency_ms") or {}
            rows.append([
                workload + (f" @ {rate} msg/s" if rate else " (max)"), profile,
                f"{produce.get('msgs_per_s', 0):.0f}", f"{lat.get('p50', 0):.2f}", f"{lat.get('p99', 0):.2f}",
                f"{e2e.get('p99', 0):.2f}" if e2e else "-", r.get("error", ""),
            ])
    header = ["workload", "profile", "msg/s", "ack p50 ms", "ack p99 ms", "e2e p99 ms", "error"]
    print(compare.text_table(header, rows))
    with open(os.path.join(cfg.out, "profiles.json"), "w") as out:
        json.dump(results, out, indent=1)
    with open(os.path.join(cfg.out, "profiles.md"), "w") as out:
        out.write(compare.md_table(header, rows) + "\n")
    compare.log(f"results in {cfg.out}")


if __name__ == "__main__":
    main()
