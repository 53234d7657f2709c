"""In-process state store: the embedded demo's and the unit tests' store.

It keeps exactly the semantics the Redis store must have (newer-window guard,
k-means folds only for written rows), so the two are interchangeable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segstream.core.ports import CentroidStats, StateBatch, flow_counts, flows_from_fields

_FIELDS = StateBatch.fields()


class InMemoryStateStore:
    """Customers are rows of growing arrays, so a batch is read and written by fancy indexing."""

    def __init__(self, hidden_size: int, history: int = 0):
        self.hidden_size = hidden_size
        self.history = history  # windows of trajectory kept per customer (0: none)
        self._row: dict[str, int] = {}
        self._data = StateBatch.empty(1024, hidden_size)
        self._trajectories: dict[str, list[StateBatch]] = {}
        self.stats: CentroidStats | None = None
        self._flows: dict[str, int] = {}  # window:before:after -> customers, as Redis keeps them

    def __len__(self) -> int:
        return len(self._row)

    def init_centroids(self, centroids: np.ndarray, prior_weight: float) -> None:
        if self.stats is None:
            self.stats = CentroidStats.seed(centroids, prior_weight)

    def _rows(self, customer_ids: Sequence[str]) -> np.ndarray:
        get = self._row.get
        return np.fromiter((get(c, -1) for c in customer_ids), np.int64, len(customer_ids))

    def load(self, customer_ids: Sequence[str]) -> tuple[StateBatch, CentroidStats]:
        if self.stats is None:
            raise RuntimeError("centroids not initialised")
        rows = self._rows(customer_ids)
        out = StateBatch.empty(len(customer_ids), self.hidden_size)
        known = np.flatnonzero(rows >= 0)
        for f in _FIELDS:
            getattr(out, f)[known] = getattr(self._data, f)[rows[known]]
        return out, self.stats.copy()

    def commit(self, customer_ids: Sequence[str], states: StateBatch) -> np.ndarray:
        states = states.stored()
        if len(set(customer_ids)) < len(customer_ids):  # one customer twice: apply in order
            written = np.zeros(len(customer_ids), bool)
            for i in range(len(customer_ids)):
                written[i] = self.commit(customer_ids[i : i + 1], states.take(np.array([i])))[0]
            return written
        rows = self._rows(customer_ids)
        old_last = np.where(rows >= 0, self._data.last_window[np.maximum(rows, 0)], -1)
        written = (rows < 0) | (old_last < states.last_window)
        for i in np.flatnonzero(rows < 0).tolist():
            rows[i] = self._append(customer_ids[i])
        for f in _FIELDS:
            getattr(self._data, f)[rows[written]] = getattr(states, f)[written]
        if self.history:
            for i in np.flatnonzero(written).tolist():
                kept = self._trajectories.setdefault(customer_ids[i], [])
                kept.append(states.take(np.array([i])))
                del kept[: -self.history]
        for w, before, after, n in flow_counts(states.take(np.flatnonzero(written))).tolist():
            key = f"{w}:{before}:{after}"
            self._flows[key] = self._flows.get(key, 0) + n
        self.stats.fold(states.h, np.where(written, states.nearest, -1))
        return written

    def _append(self, customer_id: str) -> int:
        row = self._row[customer_id] = len(self._row)
        if row == len(self._data):
            grown = StateBatch.empty(2 * row, self.hidden_size)
            for f in _FIELDS:
                getattr(grown, f)[:row] = getattr(self._data, f)
            self._data = grown
        return row

    def window_flows(self) -> dict[int, dict[tuple[int, int], int]]:
        return flows_from_fields(self._flows.items())

    def segments(self, customer_ids: Sequence[str] | None = None) -> dict[str, int]:
        """Stored customers' segments: of these ids (unknown ones -1), or of every customer."""
        seg = self._data.segment.tolist()
        if customer_ids is None:
            return {cid: seg[r] for cid, r in self._row.items()}
        return {cid: seg[r] if r >= 0 else -1 for cid, r in zip(customer_ids, self._rows(customer_ids).tolist())}

    def segment_sizes(self) -> dict[int, int]:
        """Customers currently in each segment (the ones with a segment)."""
        seg = self._data.segment[: len(self._row)]
        values, counts = np.unique(seg[seg >= 0], return_counts=True)
        return dict(zip(values.tolist(), counts.tolist()))

    def trajectory(self, customer_id: str) -> StateBatch:
        """The customer's last ``history`` states, oldest first."""
        kept = self._trajectories.get(customer_id, [])
        if not kept:
            return StateBatch.empty(0, self.hidden_size)
        return StateBatch(*(np.concatenate([getattr(k, f) for k in kept]) for f in _FIELDS))

    def state(self, customer_id: str) -> tuple | None:
        """(h, c, segment, prev_segment, last_window, n_windows) of one customer, or None."""
        r = self._row.get(customer_id)
        if r is None:
            return None
        d = self._data
        return (
            d.h[r].copy(),
            d.c[r].copy(),
            int(d.segment[r]),
            int(d.prev_segment[r]),
            int(d.last_window[r]),
            int(d.n_windows[r]),
        )
