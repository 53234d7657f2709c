"""The main job on a machine with no servers: generator -> windows -> engine, in-process.

It runs exactly the pipeline the Faust worker runs, with the in-memory store in
place of Redis, and scores the result against the generator's ground truth.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import orjson
from tqdm import tqdm

from producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.assembly import build_pipeline, event_limits
from segstream.config import Settings
from segstream.quality import score_segments

BATCH = 5000  # events per ingest and watermark check, as a worker's batch would be


def run_demo(customers: int, months: int, seed: int, settings: Settings, progress: bool | None = None) -> dict[str, Any]:
    pipeline = build_pipeline(settings)
    bank = SyntheticBank(GeneratorConfig(customers=customers, months=months, seed=seed))
    show = sys.stderr.isatty() if progress is None else progress
    # Far-future guard relative to the data, not the wall clock, so old and new
    # synthetic periods both validate.
    limits = event_limits(settings, now=float("inf"))
    invalid: Counter = Counter()
    n_events = 0
    t0 = time.perf_counter()

    def ingest(payloads: list[bytes]) -> None:
        invalid.update(err.reason for _, err in pipeline.ingest_payloads(payloads, limits).rejected)
        pipeline.drain()

    with tqdm(total=months, unit="month", disable=not show, file=sys.stderr) as bar:
        current, payloads = None, []
        for event in bank.events():  # encoded as a producer would publish them
            payloads.append(orjson.dumps(event))
            if len(payloads) == BATCH:
                ingest(payloads)
                n_events, payloads = n_events + len(payloads), []
            month = event["timestamp"][:7]
            if month != current:
                current = month
                bar.update(1)
                bar.set_postfix(changes=pipeline.totals.changes, refresh=False)
        ingest(payloads)
        n_events += len(payloads)
        pipeline.drain(final=True)
    elapsed = time.perf_counter() - t0

    totals = pipeline.totals
    segments = pipeline.engine.store.segments()
    micro = score_segments(segments, bank.truth, "micro_segment")
    coarse = score_segments(segments, bank.truth, "coarse_segment")
    counts = pipeline.windows.counts
    return {
        "events": n_events,
        "customers": customers,
        "months": months,
        "seed": seed,
        "windows_closed": totals.windows_closed,
        "state_updates": totals.applied,
        "segment_changes": totals.changes,
        "first_assignments": totals.first_assignments,
        "n_segments": len(set(s for s in segments.values() if s >= 0)),
        "ari_vs_truth": round(micro["ari"], 4),
        "nmi_vs_truth": round(micro["nmi"], 4),
        "ari_vs_dominant_trait": round(coarse["ari"], 4),
        "flip_rate": round(totals.flip_rate, 4),
        "late_events": counts["late"],
        "duplicate_events": counts["duplicate"],
        "invalid_events": sum(invalid.values()),
        "events_per_s": round(n_events / elapsed, 1),
        "seconds": round(elapsed, 2),
        "engine_seconds": {k: round(v, 3) for k, v in totals.seconds.items()},
        "model_version": pipeline.engine.model.version,
    }
