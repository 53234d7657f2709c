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


def true_changes(truth: np.ndarray) -> np.ndarray:
    """[N] first window whose true micro-segment differs from the one before it; -1 = never changed."""
    moved = truth[:, 1:] != truth[:, :-1]
    first = np.argmax(moved, axis=1) + 1
    return np.where(moved.any(axis=1), first, -1)


def score_tracking(
    labels: np.ndarray, truth: np.ndarray, announced: list[tuple[int, int, bool]], match_windows: int = 6
) -> dict[str, float | int | None]:
    """Label accuracy and change detection against the truth per window.

    ``labels`` [N, T] is the announced segment label per customer and window ("" before
    the first), ``truth`` [N, T] the true micro-segment, ``announced`` the announced
    changes as (customer row, window, new label is right). A true change is matched by
    the first announcement for that customer within ``match_windows`` after it; every
    other announcement is a false change. Delay is counted in windows (0 = announced
    in the window the change began).
    """
    n, t = truth.shape
    start = true_changes(truth)
    changed = start >= 0
    correct = labels == truth
    has = labels != ""
    col = np.arange(t)[None, :]
    before = has & (~changed[:, None] | (col < start[:, None]))
    matched: dict[int, tuple[int, bool]] = {}
    false_stable = false_changed = 0
    for row, window, right in announced:
        s = start[row]
        if s >= 0 and s <= window <= s + match_windows and row not in matched:
            matched[row] = (window - s, right)
        elif s >= 0:
            false_changed += 1
        else:
            false_stable += 1
    delays = np.array([d for d, _ in matched.values()])
    # changes early enough that 6 windows of aftermath were seen
    scorable = changed & (start + match_windows < t)
    denom = int(scorable.sum())
    hit = lambda k, need_label=False: (
        sum(  # noqa: E731
            1 for r, (d, right) in matched.items() if scorable[r] and d <= k and (right or not need_label)
        )
        / max(denom, 1)
    )
    total = len(announced)
    stable_windows = int(has[~changed].sum())
    return {
        "label_accuracy": float(correct[has].mean()) if has.any() else float("nan"),
        "label_accuracy_before_change": float(correct[before].mean()) if before.any() else float("nan"),
        "label_accuracy_stable_end": float(correct[~changed, -1].mean()) if (~changed).any() else float("nan"),
        "label_accuracy_changed_end": float(correct[changed, -1].mean()) if changed.any() else float("nan"),
        "true_changes": int(changed.sum()),
        "announced_changes": total,
        "change_precision": (len(matched) / total) if total else float("nan"),
        "change_recall_3": hit(3) if denom else float("nan"),
        "change_recall_6": hit(6) if denom else float("nan"),
        "change_recall_3_new_label": hit(3, True) if denom else float("nan"),
        "change_recall_6_new_label": hit(6, True) if denom else float("nan"),
        "median_delay": float(np.median(delays)) if len(delays) else None,
        "p90_delay": float(np.percentile(delays, 90)) if len(delays) else None,
        "false_changes_per_stable_window": false_stable / stable_windows if stable_windows else 0.0,
    }
