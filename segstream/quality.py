"""Scores of a segmentation against the generator's ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def score_segments(segments: dict[str, int], truth: pd.DataFrame, column: str = "micro_segment") -> dict[str, float]:
    """ARI and NMI of assigned segments vs a truth column, over customers that have a segment."""
    t = truth.set_index("customer_id")[column]
    ids = [c for c, s in segments.items() if s >= 0 and c in t.index]
    if not ids:
        return {"ari": float("nan"), "nmi": float("nan"), "scored": 0}
    pred = np.array([segments[c] for c in ids])
    true = t.loc[ids].to_numpy()
    return {
        "ari": float(adjusted_rand_score(true, pred)),
        "nmi": float(normalized_mutual_info_score(true, pred)),
        "scored": len(ids),
    }
