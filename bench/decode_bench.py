"""Decoding + validating events from wire bytes: the worker's path beside pydantic's one-pass JSON mode.

    python bench/decode_bench.py [--events 50000] [--repeats 3]

The worker parses with orjson, then validates the dict with pydantic; the alternative
lets pydantic parse and validate the bytes in one pass (in Rust).
"""

from __future__ import annotations

import argparse
import time

from common import encoded, report  # noqa: I001

from producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.core.events import decode_event, decode_event_one_pass


def per_event_us(fn, payloads: list[bytes], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for raw in payloads:
            fn(raw)
        best = min(best, (time.perf_counter() - t) / len(payloads))
    return best * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    bank = SyntheticBank(GeneratorConfig(customers=args.events // 40 + 10, months=4, seed=3))  # ~2x what is needed
    payloads = [v for _, v in encoded(bank.events(), limit=args.events)]
    two_step = per_event_us(lambda raw: decode_event(raw, now=float("inf")), payloads, args.repeats)
    one_pass = per_event_us(lambda raw: decode_event_one_pass(raw, now=float("inf")), payloads, args.repeats)
    report("decode", {
        "events": len(payloads),
        "orjson_then_validate_us_per_event": round(two_step, 2),
        "validate_json_us_per_event": round(one_pass, 2),
        "speedup": round(two_step / one_pass, 2),
    })


if __name__ == "__main__":
    main()
