"""The segmentation step: closed windows in, state updates and segment changes out.

Per batch: one store read, one model call, one nearest-centroid pass, one store
write. A batch may hold several windows of one customer (a backlog after a
pause); they are applied in window order as successive rounds, because each
step needs the state the previous one wrote.

Before the model steps, each window is checked against what the customer's state
predicted (``change.py``): a detected change resets the state so it re-warms on
the new behaviour. After the step, the emission policy decides whether the
announced segment moves; only such moves become segment-change events.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import NamedTuple

import numpy as np

from segstream.errors import NonFiniteValues

from .change import ChangeDetector, EmissionPolicy, decide, month_of_year
from .confidence import features as confidence_features
from .events import SegmentChange
from .kmeans import nearest
from .personality import CATEGORIES, LOADINGS, TRAITS, dominant_traits, spending_shares
from .ports import CentroidStats, SequenceModel, StateBatch, StateStore
from .profiles import profiles
from .windows import ClosedWindow, normalised_spend

STAGES = ("state_load", "lstm_step", "assignment", "state_write")
# the customer of :meth:`SegmentEngine.probe`: no producer's id (the wire's pattern refuses it)
PROBE_ID = "\x00probe"


class Nearest(NamedTuple):
    """Per row: distance to the nearest centroid, its margin to the runner-up, how much nearer it
    is than the announced segment's centroid (relative, -1..1), and the probability that it is
    the customer's true micro-segment (core/confidence.py; the margin without a fitted model)."""

    distance: np.ndarray
    margin: np.ndarray
    relative: np.ndarray
    probability: np.ndarray


class Evidence(NamedTuple):
    """What a window showed besides the state's geometry, per row: its purchases, the predicted
    traits after it, and its change statistic (the confidence reads them)."""

    n_events: np.ndarray
    traits: np.ndarray
    statistic: np.ndarray


@dataclass
class EngineResult:
    changes: list[SegmentChange] = field(default_factory=list)
    applied: int = 0  # windows that advanced a customer's state
    stale: int = 0  # windows already applied before (replays), skipped
    assigned: int = 0  # applied windows past warm-up, i.e. with a segment
    detected: int = 0  # windows whose change statistic passed the threshold (state reset)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    # windows the engine failed on, set aside with the error (SegmentationPipeline isolates them)
    quarantined: list[tuple[ClosedWindow, BaseException]] = field(default_factory=list)

    def merge(self, other: EngineResult) -> None:
        self.changes += other.changes
        self.quarantined += other.quarantined
        self.applied += other.applied
        self.stale += other.stale
        self.assigned += other.assigned
        self.detected += other.detected
        for k, v in other.seconds.items():
            self.seconds[k] += v


def rounds(windows: Sequence[ClosedWindow]) -> list[list[ClosedWindow]]:
    """Split a batch so that each customer appears at most once per round, in window order."""
    if len({w.customer_id for w in windows}) == len(windows):  # the common case, a month end: one round
        return [sorted(windows, key=attrgetter("index"))] if windows else []
    by_customer: dict[str, list[ClosedWindow]] = defaultdict(list)
    for w in sorted(windows, key=lambda w: w.index):
        by_customer[w.customer_id].append(w)
    depth = max((len(v) for v in by_customer.values()), default=0)
    return [[v[i] for v in by_customer.values() if len(v) > i] for i in range(depth)]


def _finite(what: str, *arrays: np.ndarray) -> None:
    """Refuse the batch before anything is written if a value is not finite: the worker's
    pipeline then isolates the window at fault (pipeline.py) and dead-letters it as
    ``value:non_finite``; a shared centroid never sees it."""
    for a in arrays:
        if not np.isfinite(a).all():
            raise NonFiniteValues(f"{what}: {int((~np.isfinite(a)).sum())} values are not finite")


class SegmentEngine:
    def __init__(
        self,
        model: SequenceModel,
        store: StateStore,
        *,
        policy: EmissionPolicy = EmissionPolicy(),
        detector: ChangeDetector | None = ChangeDetector(),
        initial_centroids: np.ndarray | None = None,
        prior_weight: float = 50.0,
    ):
        self.model = model
        self.store = store
        self.policy = policy
        # no calibration in the artefact (an older model): nearest-centroid moves only
        self.detector = detector if model.calibration is not None else None
        self.confidence = getattr(model, "confidence", None)  # models written before 0.8 have none
        if initial_centroids is not None:
            store.init_centroids(initial_centroids, prior_weight)

    def process(self, windows: Sequence[ClosedWindow]) -> EngineResult:
        result = EngineResult()
        for batch in rounds(windows):
            result.merge(self._process_round(batch))
        return result

    def probe(self, like: ClosedWindow, known: Sequence[str] = ()) -> None:
        """Raise whatever the engine raises on a plain window (even spending, a few purchases),
        shaped like ``like``, of a customer it has never seen and of each ``known`` customer (whose
        stored states it applied before); nothing is written.

        Whether the engine works at all, apart from any record: the pipeline asks before it blames
        the windows it failed on (pipeline.py). The known customers' windows come after any stored
        one, so their states are read and stepped as a real window's would be."""
        ids = [PROBE_ID, *known]
        after = np.iinfo(np.int32).max  # past every stored window: never a replay
        spend = np.ones_like(like.spend)
        self._process_round([ClosedWindow(c, after, like.start, like.end, spend, 10, None) for c in ids], write=False)

    def _process_round(self, windows: list[ClosedWindow], write: bool = True) -> EngineResult:
        """One store read, one model call, one store write for the whole round (none if not ``write``)."""
        res = EngineResult()
        t0 = time.perf_counter()
        old, stats = self.store.load([w.customer_id for w in windows])
        t1 = time.perf_counter()
        windows, old, index = self._drop_stale(windows, old, stats, res)
        if not windows:
            res.seconds["state_load"] = t1 - t0
            return res
        spend = normalised_spend(windows)
        _finite("spending features", spend.astype(np.float32))
        before = self.model.traits_of(old.h)
        n_events = np.fromiter((w.n_events for w in windows), np.int64, len(windows))
        memory, stat, alarm, quiet = self._detect(windows, spend, before, old, n_events)
        h, c, traits, shadow_h, shadow_c = self._step(spend, old, alarm, quiet)
        t2 = time.perf_counter()
        new, d, near = self._assign(h, c, old, index, alarm, stats, Evidence(n_events, traits, stat))
        new.chart, new.shadow_h, new.shadow_c = np.where(alarm[:, None], 0.0, memory), shadow_h, shadow_c
        t3 = time.perf_counter()
        ids = [w.customer_id for w in windows]
        written = self.store.commit(ids, new) if write else np.ones(len(ids), bool)
        t4 = time.perf_counter()
        res.applied = int(written.sum())
        res.assigned = int((written & (d.segment >= 0)).sum())
        res.detected = int((written & alarm).sum())
        evidence = {
            "statistic": stat,
            "detected": d.detected,
            "corrected": d.corrected,
            "streak": old.streak.astype(np.int64) + 1,
            "windows_since_reset": new.n_windows,
            "margin": near.relative,
            "events": n_events,
        }
        res.changes += self._changes(
            windows,
            np.flatnonzero(written & d.changed),
            old.segment,
            d.segment,
            near,
            traits,
            stats,
            before=before,
            spend=spend,
            evidence=evidence,
        )
        res.seconds = {"state_load": t1 - t0, "lstm_step": t2 - t1, "assignment": t3 - t2, "state_write": t4 - t3}
        return res

    def _drop_stale(self, windows: list[ClosedWindow], old: StateBatch, stats, res: EngineResult):
        """Windows at or before a customer's last applied one were applied already (a replay after a
        rewind): they change nothing, and their announcements go out again."""
        index = np.fromiter((w.index for w in windows), np.int64, len(windows))
        fresh = index > old.last_window
        res.stale = int((~fresh).sum())
        if not res.stale:
            return windows, old, index
        res.changes += self._reannounce(windows, old, index, stats)
        keep = np.flatnonzero(fresh)
        return [windows[i] for i in keep], old.take(keep), index[keep]

    def _step(self, spend: np.ndarray, old: StateBatch, alarm: np.ndarray, quiet: np.ndarray):
        """(h, c, traits, shadow_h, shadow_c) after this window.

        A detected change restarts from the shadow, which has seen the windows since the statistic
        last looked quiet; main and shadow states step in one model call, the shadow only where it
        carries on (a quiet window or an alarm restarts it at zero)."""
        n = len(spend)
        h0 = np.where(alarm[:, None], old.shadow_h, old.h).astype(np.float32)
        c0 = np.where(alarm[:, None], old.shadow_c, old.c).astype(np.float32)
        x = spend.astype(np.float32)
        go = np.flatnonzero(~(alarm | quiet))
        h2, c2, traits2 = self.model.step(
            np.concatenate([x, x[go]]), np.concatenate([h0, old.shadow_h[go]]), np.concatenate([c0, old.shadow_c[go]])
        )
        _finite("LSTM state", h2, c2, traits2)
        shadow_h, shadow_c = np.zeros_like(h2[:n]), np.zeros_like(c2[:n])
        shadow_h[go], shadow_c[go] = h2[n:], c2[n:]
        return h2[:n], c2[:n], traits2[:n], shadow_h, shadow_c

    def _assign(self, h, c, old: StateBatch, index: np.ndarray, alarm: np.ndarray, stats, seen: Evidence):
        """The new states (segment decided by the emission policy), the decision, and the nearest
        centroids. The k-means learns from settled states only: past warm-up, or re-warmed after a
        detected change."""
        n_windows = np.where(alarm, 1, old.n_windows + 1).astype(np.int32)
        seg, dist, conf = nearest(stats.centroids, h)
        relative = _nearer_than(stats.centroids, h, old.segment, dist)
        settled = (n_windows >= self.policy.warmup) | ((old.segment >= 0) & (n_windows >= self.policy.rewarm))
        near = np.where(settled, seg, -1).astype(np.int32)
        pending = old.pending.astype(bool)
        agrees = _agrees(self.model.traits_of(stats.centroids), seg, seen.traits)
        p = self._probability(
            conf, relative, n_windows, (pending | alarm) & (old.segment >= 0), old.segment < 0, dist, seen, agrees
        )
        # only a calibrated probability holds a move (min_confidence, first_confidence): an artefact
        # without one reports the margin, which is no probability (a fresh `segstream train`)
        sure = p if self.confidence is not None else None
        d = decide(
            self.policy,
            old.segment,
            near,
            old.nearest,
            relative,
            old.streak,
            pending,
            n_windows,
            alarm,
            conf,
            sure,
            agrees,
        )
        new = StateBatch(
            h=h,
            c=c,
            segment=d.segment,
            prev_segment=old.segment,
            last_window=index,
            n_windows=n_windows,
            nearest=near,
            streak=d.streak,
            pending=d.pending,
            chart=old.chart,
            shadow_h=old.shadow_h,
            shadow_c=old.shadow_c,
        )
        return new, d, Nearest(dist, conf, relative, p)

    def _probability(
        self, margin, relative, n_windows, after_detection, first, distance, seen: Evidence, agrees
    ) -> np.ndarray:
        cm = self.confidence
        if cm is None:  # an artefact without a fitted confidence: the margin, as before 0.8
            return np.asarray(margin, np.float64)
        x = confidence_features(
            margin,
            relative,
            n_windows,
            after_detection,
            first,
            seen.n_events,
            seen.traits,
            distance,
            seen.statistic,
            agrees,
        )
        return cm.score(x)

    def _detect(self, windows, spend: np.ndarray, before: np.ndarray, old: StateBatch, n_events: np.ndarray):
        """(chart memory, statistic, alarm, quiet) per row: the change statistic against the state's prediction."""
        n = len(windows)
        if self.detector is None:
            return old.chart, np.zeros(n), np.zeros(n, bool), np.ones(n, bool)
        cal = self.model.calibration
        starts = np.fromiter((w.start for w in windows), np.float64, n)
        observed = cal.observe(spend, month_of_year(starts))
        memory, stat, quiet = self.detector.update(old.chart, observed - before, cal.residual_spread(n_events))
        # only a state that has settled predicts anything; one already re-warming is left alone
        alarm = (stat > self.detector.threshold) & (old.n_windows >= self.policy.warmup) & ~old.pending.astype(bool)
        return memory, stat, alarm, quiet

    def _reannounce(self, windows, old: StateBatch, index: np.ndarray, stats: CentroidStats) -> list[SegmentChange]:
        """Change events of windows that were applied but may not have been announced.

        A worker that dies between writing state and publishing loses the event; the
        replay of the same window finds it applied, so the event is rebuilt from the
        stored state. Delivery is therefore at-least-once: consumers key on
        (customer_id, window_end).
        """
        rows = np.flatnonzero((index == old.last_window) & (old.segment >= 0) & (old.segment != old.prev_segment))
        if not len(rows):
            return []
        seg, dist, conf = nearest(stats.centroids, old.h[rows])
        traits = self.model.traits_of(old.h[rows])
        sub = [windows[i] for i in rows]
        at = np.arange(len(rows))
        prev = old.prev_segment[rows]
        rel = _nearer_than(stats.centroids, old.h[rows], prev, dist)
        n_events = np.fromiter((w.n_events for w in sub), np.int64, len(sub))
        # the window's change statistic is not stored: a replayed event's confidence reads it as quiet
        seen = Evidence(n_events, traits, np.zeros(len(rows)))
        agrees = _agrees(self.model.traits_of(stats.centroids), old.segment[rows], traits)
        p = self._probability(conf, rel, old.n_windows[rows], np.zeros(len(rows), bool), prev < 0, dist, seen, agrees)
        near = Nearest(dist, conf, rel, p)
        return self._changes(sub, at, prev, old.segment[rows], near, traits, stats)

    def _changes(
        self,
        windows,
        rows,
        old_seg,
        new_seg,
        near: Nearest,
        traits,
        stats: CentroidStats,
        *,
        before: np.ndarray | None = None,
        spend: np.ndarray | None = None,
        evidence: dict[str, np.ndarray] | None = None,
    ) -> list[SegmentChange]:
        if not len(rows):
            return []
        rows = np.asarray(rows)
        prof = profiles(self.model.traits_of(stats.centroids))
        labels = [p.label for p in prof]
        why = _explanations(rows, old_seg, before, traits, spend, evidence)
        old_l, new_l = old_seg[rows].tolist(), new_seg[rows].tolist()
        dist_l, traits_l = near.distance[rows].tolist(), traits[rows].tolist()
        conf_l, margin_l = near.probability[rows].tolist(), near.margin[rows].tolist()
        model_version, centroid_version = self.model.version, stats.version
        out = []
        # built from the engine's own typed arrays: validating every field again costs more
        # than the rest of a window's processing, so the model is constructed as is
        make = SegmentChange.model_construct
        for j, i in enumerate(rows.tolist()):
            old, new = old_l[j], new_l[j]
            out.append(
                make(
                    customer_id=windows[i].customer_id,
                    old_segment=None if old < 0 else old,
                    new_segment=new,
                    old_segment_label=None if old < 0 else labels[old],
                    segment_label=labels[new],
                    recommendation=prof[new].family,
                    window_end=datetime.fromtimestamp(windows[i].end, tz=UTC),
                    window_start=datetime.fromtimestamp(windows[i].start, tz=UTC),
                    distance=dist_l[j],
                    confidence=conf_l[j],
                    margin=margin_l[j],
                    model_version=model_version,
                    centroid_version=centroid_version,
                    traits=dict(zip(TRAITS, traits_l[j])),
                    **(why[j] if why else _UNEXPLAINED),
                )
            )
        return out


def _agrees(centroid_traits: np.ndarray, segment: np.ndarray, traits: np.ndarray) -> np.ndarray:
    """[B] whether the state's own two leading predicted traits name ``segment``'s label."""
    return (dominant_traits(centroid_traits)[np.maximum(segment, 0)] == dominant_traits(traits)).all(1)


def _nearer_than(centroids: np.ndarray, h: np.ndarray, segment: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """How much nearer the nearest centroid (at ``dist``) is than ``segment``'s, relative: -1..1."""
    d_seg = np.linalg.norm(h - centroids[np.maximum(segment, 0)], axis=1)
    return np.divide(d_seg - dist, d_seg + dist, out=np.zeros_like(dist), where=d_seg + dist > 0)


_UNEXPLAINED = {"trait_shift": None, "drivers": None, "evidence": None}


def _explanations(rows: np.ndarray, old_seg, before, after, spend, evidence) -> list[dict]:
    """Why each announced change happened (row-aligned with ``rows``): the trait shift, the
    spending behind it, the evidence.

    ``drivers`` are the window's categories that pull most along the trait shift
    (their spending share times their loading on it): what a banker can check. A first
    assignment has no shift (there was no state before it), and a replayed announcement
    is rebuilt from the stored state and carries no explanation.
    """
    if before is None or evidence is None or spend is None:
        return []
    shares = spending_shares(spend[rows])
    shift = after[rows] - before[rows]
    # a model over other inputs than the category table has no category drivers
    pull = shares * (shift @ LOADINGS.T) if shares.shape[1] == len(CATEGORIES) else np.zeros_like(shares)
    top = np.argsort(-pull, axis=1)[:, :3].tolist()
    first_row = old_seg[rows] < 0
    first = first_row.tolist()
    reasons = np.select(
        [first_row, evidence["detected"][rows], evidence["corrected"][rows]],
        ["first_assignment", "detected_change", "correction"],
        "confirmed_drift",
    ).tolist()
    confirmed = np.where(
        evidence["detected"][rows], evidence["windows_since_reset"][rows], evidence["streak"][rows]
    ).tolist()
    stat, margin = np.round(evidence["statistic"][rows], 2).tolist(), np.round(evidence["margin"][rows], 3).tolist()
    since, purchases = evidence["windows_since_reset"][rows].tolist(), evidence["events"][rows].tolist()
    shift_r, shares_r, pulls = np.round(shift, 3).tolist(), np.round(shares, 3).tolist(), pull.tolist()
    out = []
    for j in range(len(rows)):
        proof = {
            "reason": reasons[j],
            "statistic": stat[j],
            "windows_confirmed": confirmed[j],
            "margin": margin[j],
            "windows_since_reset": since[j],  # since the first window or the last detected change
            "purchases": purchases[j],  # in this window
        }
        if first[j]:
            out.append({"evidence": proof})
            continue
        out.append(
            {
                "trait_shift": dict(zip(TRAITS, shift_r[j])),
                "drivers": [{"category": CATEGORIES[k], "share": shares_r[j][k]} for k in top[j] if pulls[j][k] > 0],
                "evidence": proof,
            }
        )
    return out
