"""Assignment to the nearest centroid, with a margin-based confidence, for a batch at once.

The centroids themselves are the running means kept in :class:`~segstream.core.ports.CentroidStats`
(seeded, folded and shared by the stores).
"""

from __future__ import annotations

import numpy as np


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
