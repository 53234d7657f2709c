"""The shared online k-means, in one home: its sufficient statistics and the nearest-centroid rule.

A centroid is the running mean of the hidden states folded into it (Sculley's mini-batch
k-means with per-centroid counts). Its whole state is per-centroid sums and counts, which
add up in any order, so any number of workers (and the Redis commit script, which folds
the same deltas) keep one model; ``version`` counts the folds. Assignment is the nearest
centroid, with a margin-based confidence, for a batch at once.

>>> import numpy as np
>>> km = CentroidStats.seed(np.array([[0.0, 0.0], [10.0, 10.0]]), prior_weight=1.0)
>>> label, _, _ = nearest(km.centroids, np.array([[9.0, 9.0]]))
>>> km.fold(np.array([[9.0, 9.0]]), label)
>>> km.centroids[1].tolist(), km.version
([9.5, 9.5], 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segstream.errors import NonFiniteValues


def nearest(centroids: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest centroid per row, its distance, and a margin-based confidence in [0, 1]."""
    x = np.asarray(x, np.float32)
    d2 = (x * x).sum(1)[:, None] - 2.0 * x @ centroids.T + (centroids * centroids).sum(1)[None, :]
    np.maximum(d2, 0.0, out=d2)
    if centroids.shape[0] == 1:
        idx = np.zeros(len(x), np.int64)
        d1 = np.sqrt(d2[:, 0])
        return idx, d1, np.ones(len(x))
    part = np.argpartition(d2, 1, axis=1)[:, :2]
    rows = np.arange(len(x))
    a, b = d2[rows, part[:, 0]], d2[rows, part[:, 1]]
    first = np.where(a <= b, part[:, 0], part[:, 1])
    d1, dn = np.sqrt(np.minimum(a, b)), np.sqrt(np.maximum(a, b))
    conf = np.divide(dn - d1, dn + d1, out=np.zeros_like(d1), where=(dn + d1) > 0)
    return first, d1, conf


@dataclass
class CentroidStats:
    """Sufficient statistics of the shared online k-means: centroid j = sums[j] / counts[j].

    Sums and counts add up, so deltas from any number of workers fold in, in any
    order, to the same model; ``version`` counts the folds.
    """

    sums: np.ndarray  # [k, H] float64
    counts: np.ndarray  # [k] float64
    version: int

    @classmethod
    def seed(cls, centroids: np.ndarray, prior_weight: float) -> CentroidStats:
        """Initial centroids, each worth ``prior_weight`` states: how far the first folds can move them."""
        c = np.asarray(centroids, np.float64)
        return cls(c * prior_weight, np.full(len(c), float(prior_weight)), 0)

    @property
    def centroids(self) -> np.ndarray:
        return (self.sums / np.maximum(self.counts, 1e-12)[:, None]).astype(np.float32)

    @staticmethod
    def delta(h: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """What assigning rows of ``h`` to ``labels`` (-1 = none) adds to k centroids' sums and
        counts (Sculley's running means: a centroid is the mean of the states folded into it).
        A store that folds elsewhere (Redis, in its commit script) sends this."""
        keep = labels >= 0
        sums = np.zeros((k, h.shape[1]), np.float64)
        np.add.at(sums, labels[keep], np.asarray(h, np.float64)[keep])
        counts = np.bincount(labels[keep], minlength=k).astype(np.float64)
        return sums, counts

    def fold(self, h: np.ndarray, labels: np.ndarray) -> None:
        """Fold states into their centroids, in place; a no-op (same version) when none has a label."""
        if (labels >= 0).any():
            sums, counts = self.delta(h, labels, len(self.counts))
            if not np.isfinite(sums).all():  # one bad state would poison a shared centroid for good
                raise NonFiniteValues("a centroid fold with values that are not finite")
            self.sums += sums
            self.counts += counts
            self.version += 1

    def copy(self) -> CentroidStats:
        return CentroidStats(self.sums.copy(), self.counts.copy(), self.version)
