"""Online k-means over hidden states, vectorised, in river's estimator style.

Each centroid is the running mean of the states assigned to it (learning rate
1/n, as in Sculley's web-scale k-means), so its statistics are plain sums and
counts: what several workers need to share one model by adding deltas.
"""

from __future__ import annotations

import numpy as np

from .ports import CentroidStats


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


class OnlineKMeans:
    """Running-mean k-means; ``learn_many`` returns nothing, ``fold`` adds another's delta."""

    def __init__(self, centroids: np.ndarray, prior_weight: float = 1.0):
        centroids = np.asarray(centroids, np.float64)
        self.stats = CentroidStats(
            sums=centroids * prior_weight, counts=np.full(len(centroids), float(prior_weight)), version=0
        )

    @property
    def centroids(self) -> np.ndarray:
        return self.stats.centroids

    def predict_many(self, x: np.ndarray) -> np.ndarray:
        return nearest(self.centroids, x)[0]

    def predict_one(self, x: np.ndarray) -> int:
        return int(self.predict_many(np.asarray(x)[None, :])[0])

    def learn_many(self, x: np.ndarray) -> np.ndarray:
        labels = self.predict_many(x)
        self.fold(*delta(x, labels, len(self.stats.counts)))
        return labels

    def learn_one(self, x: np.ndarray) -> int:
        return int(self.learn_many(np.asarray(x)[None, :])[0])

    def fold(self, sums: np.ndarray, counts: np.ndarray) -> None:
        self.stats.sums += sums
        self.stats.counts += counts
        self.stats.version += 1


def delta(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sufficient-statistics delta of assigning rows of ``x`` to ``labels`` (-1 = skip)."""
    keep = labels >= 0
    sums = np.zeros((k, x.shape[1]), np.float64)
    np.add.at(sums, labels[keep], x[keep].astype(np.float64))
    counts = np.bincount(labels[keep], minlength=k).astype(np.float64)
    return sums, counts
