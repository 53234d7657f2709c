"""The segmentation step: closed windows in, state updates and segment changes out.

Per batch: one store read, one model call, one nearest-centroid pass, one store
write. A batch may hold several windows of one customer (a backlog after a
pause); they are applied in window order as successive rounds, because each
step needs the state the previous one wrote.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

import numpy as np

from .assignment import nearest
from .events import SegmentChange
from .personality import TRAITS
from .profiles import profiles
from .ports import CentroidStats, SequenceModel, StateBatch, StateStore
from .windows import ClosedWindow, normalised_spend

STAGES = ("state_load", "lstm_step", "assignment", "state_write")


@dataclass
class EngineResult:
    changes: list[SegmentChange] = field(default_factory=list)
    applied: int = 0  # windows that advanced a customer's state
    stale: int = 0  # windows already applied before (replays), skipped
    assigned: int = 0  # applied windows past warm-up, i.e. with a segment
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def merge(self, other: "EngineResult") -> None:
        self.changes += other.changes
        self.applied += other.applied
        self.stale += other.stale
        self.assigned += other.assigned
        for k, v in other.seconds.items():
            self.seconds[k] += v


def rounds(windows: Sequence[ClosedWindow]) -> list[list[ClosedWindow]]:
    """Split a batch so that each customer appears at most once per round, in window order."""
    by_customer: dict[str, list[ClosedWindow]] = defaultdict(list)
    for w in sorted(windows, key=lambda w: w.index):
        by_customer[w.customer_id].append(w)
    depth = max((len(v) for v in by_customer.values()), default=0)
    return [[v[i] for v in by_customer.values() if len(v) > i] for i in range(depth)]


class SegmentEngine:
    def __init__(
        self,
        model: SequenceModel,
        store: StateStore,
        *,
        warmup_windows: int = 3,
        initial_centroids: np.ndarray | None = None,
        prior_weight: float = 50.0,
    ):
        self.model = model
        self.store = store
        self.warmup_windows = warmup_windows
        if initial_centroids is not None:
            store.init_centroids(initial_centroids, prior_weight)

    def process(self, windows: Sequence[ClosedWindow]) -> EngineResult:
        result = EngineResult()
        for batch in rounds(windows):
            result.merge(self._process_round(batch))
        return result

    def _process_round(self, windows: list[ClosedWindow]) -> EngineResult:
        res = EngineResult()
        t0 = time.perf_counter()
        ids = [w.customer_id for w in windows]
        old, stats = self.store.load(ids)
        t1 = time.perf_counter()

        index = np.fromiter((w.index for w in windows), np.int64, len(windows))
        fresh = index > old.last_window
        res.stale = int((~fresh).sum())
        if res.stale:
            res.changes += self._reannounce(windows, old, index, stats)
            keep = np.flatnonzero(fresh)
            windows = [windows[i] for i in keep]
            ids = [w.customer_id for w in windows]
            old, index = old.take(keep), index[keep]
        if not windows:
            res.seconds["state_load"] = t1 - t0
            return res

        x = normalised_spend(windows).astype(np.float32)
        h, c, traits = self.model.step(x, old.h, old.c)
        t2 = time.perf_counter()

        n_windows = old.n_windows + 1
        warm = n_windows >= self.warmup_windows
        seg, dist, conf = nearest(stats.centroids, h)
        segment = np.where(warm, seg, -1).astype(np.int32)
        new = StateBatch(h=h, c=c, segment=segment, prev_segment=old.segment, last_window=index, n_windows=n_windows)
        t3 = time.perf_counter()

        written = self.store.commit(ids, new)
        t4 = time.perf_counter()

        res.applied = int(written.sum())
        res.assigned = int((written & warm).sum())
        changed = np.flatnonzero(written & warm & (segment != old.segment))
        res.changes += self._changes(windows, changed, old.segment, segment, dist, conf, traits, stats)
        res.seconds = {"state_load": t1 - t0, "lstm_step": t2 - t1, "assignment": t3 - t2, "state_write": t4 - t3}
        return res

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
        return self._changes(sub, at, old.prev_segment[rows], old.segment[rows], dist, conf, traits, stats)

    def _changes(self, windows, rows, old_seg, new_seg, dist, conf, traits, stats: CentroidStats) -> list[SegmentChange]:
        if not len(rows):
            return []
        prof = profiles(self.model.traits_of(stats.centroids))
        return [
            SegmentChange(
                customer_id=windows[i].customer_id,
                old_segment=None if old_seg[i] < 0 else int(old_seg[i]),
                new_segment=int(new_seg[i]),
                old_segment_label=None if old_seg[i] < 0 else prof[old_seg[i]].label,
                segment_label=prof[new_seg[i]].label,
                recommendation=prof[new_seg[i]].family,
                window_end=datetime.fromtimestamp(windows[i].end, tz=timezone.utc),
                distance=float(dist[i]),
                confidence=float(conf[i]),
                model_version=self.model.version,
                centroid_version=stats.version,
                traits=dict(zip(TRAITS, map(float, traits[i]))),
            )
            for i in rows
        ]

