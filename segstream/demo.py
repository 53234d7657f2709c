"""The main job on a machine with no servers: generator -> windows -> engine, in-process.

It runs exactly the pipeline the Faust worker runs, with the in-memory store in
place of Redis, and scores the result against the generator's ground truth.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

import numpy as np
import orjson
from tqdm import tqdm

from segstream.assembly import build_pipeline, event_limits
from segstream.config import Settings
from segstream.core.events import SegmentChange
from segstream.core.pipeline import SegmentationPipeline
from segstream.core.profiles import segment_labels
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.quality import calibration_error, score_segments, score_tracking

BATCH = 5000  # events per ingest and watermark check, as a worker's batch would be


def label_timeline(
    bank: SyntheticBank, truth: np.ndarray, changes: list[SegmentChange]
) -> tuple[np.ndarray, list[tuple[int, int, bool]], np.ndarray]:
    """Announced label per customer and month ([N, T], "" before the first) from the change
    events alone, as a downstream consumer would see them; the announced changes as
    (customer row, month, new label is the true one); and every event's (confidence, label right,
    a change after the first) as rows of an array."""
    cfg = bank.config
    row = {c: i for i, c in enumerate(bank.customer_ids.tolist())}
    first = cfg.start_year * 12 + cfg.start_month - 1
    labels = np.full(truth.shape, "", dtype=object)
    moves, right = [], []
    for ch in sorted(changes, key=lambda c: c.window_end):
        r = row[ch.customer_id]
        m = ch.window_end.year * 12 + ch.window_end.month - 1 - first - 1  # the month the window covered
        labels[r, m:] = ch.segment_label
        right.append((ch.confidence, ch.segment_label == truth[r, m], ch.old_segment is not None))
        if ch.old_segment is not None:
            moves.append((r, m, right[-1][1]))
    return labels, moves, np.array(right, float).reshape(-1, 3)


def run_demo(
    customers: int,
    months: int,
    seed: int,
    settings: Settings,
    progress: bool | None = None,
    change_share: float = 0.0,
    drift_share: float = 0.0,
    seasonal: bool = False,
    pipeline: SegmentationPipeline | None = None,
    generator: GeneratorConfig | None = None,
    changes_out: list[SegmentChange] | None = None,
) -> dict[str, Any]:
    """Run and score; pass ``pipeline`` to look at its store afterwards, ``generator`` for a bank
    the other arguments do not describe (it overrides them), ``changes_out`` to keep the events."""
    pipeline = pipeline or build_pipeline(settings)
    cfg = generator or GeneratorConfig(
        customers=customers,
        months=months,
        seed=seed,
        change_share=change_share,
        drift_share=drift_share,
        seasonal=seasonal,
    )
    customers, months, seed = cfg.customers, cfg.months, cfg.seed
    change_share, drift_share, seasonal = cfg.change_share, cfg.drift_share, cfg.seasonal
    bank = SyntheticBank(cfg)
    show = sys.stderr.isatty() if progress is None else progress
    t0 = time.perf_counter()
    n_events, changes, invalid = stream(bank, pipeline, settings, months, show)
    if changes_out is not None:
        changes_out.extend(changes)
    elapsed = time.perf_counter() - t0
    truth = bank.micro_segments()
    labels, moves, events = label_timeline(bank, truth, changes)
    tracking = score_tracking(labels, truth, moves)
    conf, right = events[:, 0], events[:, 1].astype(bool)
    tracking["calibration_error"] = calibration_error(conf, right)
    tracking["right_when_confidence_0.8"] = float(right[conf >= 0.8].mean()) if (conf >= 0.8).any() else None

    totals = pipeline.totals
    segments = pipeline.engine.store.segments()
    micro = score_segments(segments, bank.truth, "micro_segment")
    state = state_view(pipeline, bank, truth)
    # what waiting for a sure first label costs: how many windows a customer's state had seen by it
    seen = np.array([c.evidence["windows_since_reset"] for c in changes if c.old_segment is None and c.evidence])
    coarse = score_segments(segments, bank.truth, "coarse_segment")
    counts = pipeline.windows.counts
    return {
        "events": n_events,
        "customers": customers,
        "months": months,
        "seed": seed,
        "change_share": change_share,
        "drift_share": drift_share,
        "seasonal": seasonal,
        "windows_closed": totals.windows_closed,
        "state_updates": totals.applied,
        "segment_changes": totals.changes,
        "first_assignments": totals.first_assignments,
        "n_segments": len(set(s for s in segments.values() if s >= 0)),
        "ari_vs_truth": round(micro["ari"], 4),
        "nmi_vs_truth": round(micro["nmi"], 4),
        "ari_vs_dominant_trait": round(coarse["ari"], 4),
        **state,
        "first_label_windows_median": float(np.median(seen)) if len(seen) else None,
        "first_label_windows_p90": float(np.percentile(seen, 90)) if len(seen) else None,
        "flip_rate": round(totals.flip_rate, 4),
        "changes_detected": totals.detected,
        # four significant digits: a rate of false changes near its 0.2% goal needs more than 4 decimals
        **{k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in tracking.items()},
        "late_events": counts["late"],
        "duplicate_events": counts["duplicate"],
        "invalid_events": invalid,
        "events_per_s": round(n_events / elapsed, 1),
        "seconds": round(elapsed, 2),
        "engine_seconds": {k: round(v, 3) for k, v in totals.seconds.items()},
        "model_version": pipeline.engine.model.version,
    }


def state_view(pipeline: SegmentationPipeline, bank: SyntheticBank, truth: np.ndarray) -> dict[str, float]:
    """What the customers' states know at the end, whatever was announced: the ARI and label accuracy
    of each state's nearest centroid. The announced segment moves only when the emission policy
    lets it (a consumer acts on each move), so the gap between the two is the price of not
    announcing every flip, not a limit of the model."""
    state, stats = pipeline.engine.store.load(bank.customer_ids.tolist())
    has = state.nearest >= 0
    nearest = dict(zip(bank.customer_ids[has].tolist(), state.nearest[has].tolist()))
    labels = segment_labels(pipeline.engine.model.traits_of(stats.centroids))
    right = labels[state.nearest[has]] == truth[has, -1]
    return {
        "ari_state_vs_truth": round(score_segments(nearest, bank.truth, "micro_segment")["ari"], 4),
        "label_accuracy_state_end": round(float(right.mean()), 4) if has.any() else float("nan"),
    }


def stream(
    bank: SyntheticBank, pipeline: SegmentationPipeline, settings: Settings, months: int, show: bool
) -> tuple[int, list[SegmentChange], int]:
    """Every event of ``bank`` through the pipeline's own decode path, encoded as a producer would
    publish it: (events, the change events announced, events refused)."""
    changes: list[SegmentChange] = []
    # Far-future guard relative to the data, not the wall clock, so old and new
    # synthetic periods both validate.
    limits = event_limits(settings, now=float("inf"))
    invalid: Counter = Counter()
    n_events = 0

    def ingest(payloads: list[bytes]) -> None:
        invalid.update(err.reason for _, err in pipeline.ingest_payloads(payloads, limits).rejected)
        changes.extend(pipeline.drain().changes)

    with tqdm(total=months, unit="month", disable=not show, file=sys.stderr) as bar:
        current, payloads = None, []
        for event in bank.events():
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
        changes.extend(pipeline.drain(final=True).changes)
    return n_events, changes, sum(invalid.values())
