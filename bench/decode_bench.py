"""Decoding + validating events from wire bytes: the batch path beside the per-event reference.

    python bench/decode_bench.py [--events 50000] [--batch 8192] [--repeats 3]

Three ways over the same payloads, best of ``repeats``:
  * orjson only: what the bare consumer of the end-to-end bench does (parse, no checks);
  * reference: ``decode_event`` per event (orjson, then pydantic), the path every
    non-canonical event takes and the worker's only path before batch decoding;
  * batch: ``decode_batch`` (msgspec on the canonical form, checks on arrays) into the
    columns the window aggregator consumes.
"""

from __future__ import annotations

import argparse
import time

import orjson
from common import encoded, report  # noqa: I001

from segstream.core.events import decode_event
from segstream.core.wire import Limits, decode_batch
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank


def per_event_us(run, payloads: list[bytes], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        run(payloads)
        best = min(best, (time.perf_counter() - t) / len(payloads))
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    bank = SyntheticBank(GeneratorConfig(customers=args.events // 40 + 10, months=4, seed=3))  # ~2x what is needed
    payloads = [v for _, v in encoded(bank.events(), limit=args.events)]
    limits = Limits(now=float("inf"))

    def orjson_only(ps):
        for raw in ps:
            orjson.loads(raw)

    def reference(ps):
        for raw in ps:
            decode_event(raw, now=float("inf"))

    def batch(ps):
        for i in range(0, len(ps), args.batch):
            assert not decode_batch(ps[i : i + args.batch], limits).rejected

    floor = per_event_us(orjson_only, payloads, args.repeats)
    ref = per_event_us(reference, payloads, args.repeats)
    fast = per_event_us(batch, payloads, args.repeats)
    report(
        "decode",
        {
            "events": len(payloads),
            "batch": args.batch,
            "orjson_only_us_per_event": round(floor, 3),
            "reference_us_per_event": round(ref, 3),
            "batch_us_per_event": round(fast, 3),
            "batch_speedup_over_reference": round(ref / fast, 2),
            "batch_cost_in_orjson_parses": round(fast / floor, 2),
        },
    )


if __name__ == "__main__":
    main()
