"""In-process state store: the embedded demo's and the unit tests' store.

It keeps exactly the semantics the Redis store must have (newer-window guard,
k-means folds only for written rows), so the two are interchangeable.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from segstream.core.assignment import delta
from segstream.core.ports import CentroidStats, StateBatch


class InMemoryStateStore:
    def __init__(self, hidden_size: int):
        self.hidden_size = hidden_size
        self._rows: dict[str, tuple] = {}  # h, c, segment, prev_segment, last_window, n_windows
        self.stats: CentroidStats | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def init_centroids(self, centroids: np.ndarray, prior_weight: float) -> None:
        if self.stats is None:
            c = np.asarray(centroids, np.float64)
            self.stats = CentroidStats(c * prior_weight, np.full(len(c), float(prior_weight)), 0)

    def load(self, customer_ids: Sequence[str]) -> tuple[StateBatch, CentroidStats]:
        if self.stats is None:
            raise RuntimeError("centroids not initialised")
        out = StateBatch.empty(len(customer_ids), self.hidden_size)
        for i, cid in enumerate(customer_ids):
            row = self._rows.get(cid)
            if row is not None:
                out.h[i], out.c[i], out.segment[i], out.prev_segment[i], out.last_window[i], out.n_windows[i] = row
        snap = CentroidStats(self.stats.sums.copy(), self.stats.counts.copy(), self.stats.version)
        return out, snap

    def commit(self, customer_ids: Sequence[str], states: StateBatch) -> np.ndarray:
        written = np.zeros(len(customer_ids), bool)
        for i, cid in enumerate(customer_ids):
            row = self._rows.get(cid)
            if row is not None and row[4] >= states.last_window[i]:
                continue
            self._rows[cid] = (
                states.h[i].copy(), states.c[i].copy(), int(states.segment[i]), int(states.prev_segment[i]),
                int(states.last_window[i]), int(states.n_windows[i]),
            )
            written[i] = True
        labels = np.where(written, states.segment, -1)
        if (labels >= 0).any():
            sums, counts = delta(states.h, labels, len(self.stats.counts))
            self.stats.sums += sums
            self.stats.counts += counts
            self.stats.version += 1
        return written

    def segments(self) -> dict[str, int]:
        return {cid: row[2] for cid, row in self._rows.items()}

    def state(self, customer_id: str) -> tuple | None:
        return self._rows.get(customer_id)
