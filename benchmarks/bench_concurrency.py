"""Concurrent model calls against the loopback server: how close to ideal is the bounded pool?

Each call takes ``latency`` seconds on the server. The ideal wall time of ``calls`` calls
at concurrency ``c`` is ``calls * latency / c``; the floor of the same run is concurrency 1.
Run: ``python -m benchmarks.bench_concurrency`` (about 45 s).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import markdown_table, median, save
from workshop.calls import Prefetcher
from workshop.fixtures import load_fixtures
from workshop.loopback import LoopbackServer, Reply
from workshop.payload import Payload
from workshop.providers import ClientSettings, ResponsesProvider

ROOT = Path(__file__).resolve().parents[1]


def _one_run(server: LoopbackServer, provider: ResponsesProvider, calls: int, concurrency: int) -> float:
    payload = Payload("bench-model", "hello", 16, 0.0, "v_bench", "Answer briefly.")
    request = provider.request(payload)
    prefetcher = Prefetcher(lambda key: provider.send(request), concurrency)
    started = time.perf_counter()
    prefetcher.submit(("v_bench", f"case_{index}", 0) for index in range(calls))
    prefetcher.wait_all()
    elapsed = time.perf_counter() - started
    prefetcher.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="pooled runs; the median is reported")
    parser.add_argument("--floor-calls", type=int, default=300, help="calls of the concurrency-1 floor (one run)")
    args = parser.parse_args()

    contract = load_fixtures(ROOT / "cases" / "cases.json", ROOT / "cases" / "prompt_versions.json").contract
    with LoopbackServer(responder=lambda request: Reply(text='{"ok": true}'), latency=args.latency) as server:
        settings = ClientSettings(base_url=server.base_url, api_key="bench-key", max_retries=0, timeout_s=30)
        provider = ResponsesProvider(settings, contract)
        _one_run(server, provider, 4, 4)  # warm the connection pool and the SDK
        floor = [_one_run(server, provider, args.floor_calls, 1)]  # calls x latency: one run is enough
        server.reset_counters()
        pooled = [_one_run(server, provider, args.calls, args.concurrency) for _ in range(args.repeats)]
        in_flight = server.max_in_flight

    floor_per_call = median(floor) / args.floor_calls
    ideal = args.calls * args.latency / args.concurrency
    ratio = round(median(pooled) / ideal, 3)
    rows = [
        ["concurrency 1 (floor)", args.floor_calls, median(floor), round(args.floor_calls * args.latency, 3), "", 1],
        [f"concurrency {args.concurrency}", args.calls, median(pooled), round(ideal, 3), ratio, in_flight],
    ]
    table = markdown_table(["setting", "calls", "median s", "ideal s", "ratio to ideal", "max in flight"], rows)
    speedup = round(floor_per_call * args.calls / median(pooled), 2)
    table += f"\nSpeed-up over the floor (per call): {speedup}x. Target: ratio to ideal at most 1.5.\n"
    data = {
        "calls": args.calls,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "floor_s": floor,
        "pooled_s": pooled,
        "ideal_s": ideal,
        "ratio_to_ideal": ratio,
        "max_in_flight": in_flight,
        "speedup_over_floor": speedup,
    }
    save("concurrency", data, table)
    print(table)


if __name__ == "__main__":
    main()
