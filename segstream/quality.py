"""Scores of a segmentation against the generator's ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

# the label-exact figures a consumer sees (issue 31), in the order reports show them
HEADLINE = (
    "precision",
    "recall_3",
    "recall_6",
    "median_delay",
    "false_changes_per_stable_window",
    "label_accuracy_stable_end",
    "label_accuracy_changed_end",
)


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


# what each announced change (after the first label) was, by the precision's rule: the first is
# the precise share; the others say where the imprecise ones went
ANNOUNCED = ("right", "wrong_label", "late", "before_change", "stable_customer")


def _kind(start: int, window: int, right: bool, match_windows: int) -> str:
    """Which of ``ANNOUNCED`` an announcement at ``window`` is, for a customer whose true change
    began at ``start`` (-1: never): precision counts ``right`` and the breakdown all of them."""
    if start < 0:
        return "stable_customer"
    if window < start:
        return "before_change"
    if window >= start + match_windows:
        return "late"
    return "right" if right else "wrong_label"


def _match(announced: list[tuple[int, int, bool]], start: np.ndarray, match_windows: int):
    """Announcements against true changes: per changed customer its first announcement at or after
    the change (delay, label right), the same by the lenient rule, and the counts precision needs."""
    first: dict[int, tuple[int, bool]] = {}
    lenient: dict[int, tuple[int, bool]] = {}
    exact_right = lenient_right = false_stable = 0
    for row, window, right in sorted(announced, key=lambda a: (a[0], a[1])):
        s = start[row]
        kind = _kind(s, window, right, match_windows)
        exact_right += kind == "right"
        if s >= 0 and s <= window <= s + match_windows and row not in lenient:
            lenient[row] = (window - s, right)
            lenient_right += 1
        if kind in ("right", "wrong_label") and row not in first:
            first[row] = (window - s, right)
        false_stable += kind == "stable_customer"
    return first, lenient, exact_right, lenient_right, false_stable


def score_tracking(
    labels: np.ndarray, truth: np.ndarray, announced: list[tuple[int, int, bool]], match_windows: int = 6
) -> dict[str, float | int | None]:
    """Label accuracy and change detection against the truth per window, as a consumer sees them.

    ``labels`` [N, T] is the announced segment label per customer and window ("" before
    the first), ``truth`` [N, T] the true micro-segment, ``announced`` the announced
    changes after the first assignment as (customer row, window, new label is the true one).

    The headline figures are label-exact (issue 31):

    * a true change at window *m* is **recalled within k** (``recall_3``, ``recall_6``) when
      the first announced change of that customer in windows *m … m+k−1* (the change
      window counts as the first) carries the customer's true new micro-segment;
    * **precision** is the share of announced changes whose new label is the customer's
      true micro-segment at that window and which follow a true change within the last
      ``match_windows`` windows (the change window and the five after it);
    * **delay** (``median_delay``, ``p90_delay``) is in windows, the change window being 1,
      over the changes recalled within ``match_windows``.

    A change that begins at or before a customer's first label can only be received as that first
    label: ``changes_before_first_label`` is their share of the scored changes, and
    ``recall_*_after_first_label`` the recall over the others (a breakdown, not a headline).

    The lenient variants of earlier releases stay beside them, named as such: any
    announcement within delay 0..k (k+1 windows) whatever its label, and precision that
    counts an announcement right when any true change came within ``match_windows``.
    """
    n, t = truth.shape
    start = true_changes(truth)
    changed = start >= 0
    correct = labels == truth
    has = labels != ""
    col = np.arange(t)[None, :]
    before = has & (~changed[:, None] | (col < start[:, None]))
    first, lenient, exact_right, lenient_right, false_stable = _match(announced, start, match_windows)
    # changes early enough that ``match_windows`` windows of aftermath were seen
    scorable = changed & (start + match_windows <= t)
    denom = int(scorable.sum())
    # a change that begins at or before the customer's first label reaches consumers as that first
    # label, never as a change, and only a later correction can recall it: counted apart, a breakdown
    first_label = np.where(has.any(1), np.argmax(has, axis=1), t)
    early = scorable & (start <= first_label)

    def recall(k: int, among: np.ndarray = scorable) -> float:
        n_among = int(among.sum())
        return (
            sum(1 for r, (d, right) in first.items() if among[r] and d < k and right) / n_among
            if n_among
            else float("nan")
        )

    old_scorable = changed & (start + match_windows < t)  # as the lenient figures always counted

    def lenient_recall(k: int) -> float:
        n_old = int(old_scorable.sum())
        return sum(1 for r, (d, _) in lenient.items() if old_scorable[r] and d <= k) / n_old if n_old else float("nan")

    delays = np.array([d + 1 for r, (d, right) in first.items() if right])
    lenient_delays = np.array([d for d, _ in lenient.values()])
    total = len(announced)
    stable_windows = int(has[~changed].sum())
    return {
        "precision": exact_right / total if total else float("nan"),
        "recall_3": recall(3),
        "recall_6": recall(6),
        "median_delay": float(np.median(delays)) if len(delays) else None,
        "p90_delay": float(np.percentile(delays, 90)) if len(delays) else None,
        "false_changes_per_stable_window": false_stable / stable_windows if stable_windows else 0.0,
        "label_accuracy": float(correct[has].mean()) if has.any() else float("nan"),
        "label_accuracy_before_change": float(correct[before].mean()) if before.any() else float("nan"),
        "label_accuracy_stable_end": float(correct[~changed, -1].mean()) if (~changed).any() else float("nan"),
        "label_accuracy_changed_end": float(correct[changed, -1].mean()) if changed.any() else float("nan"),
        "true_changes": int(changed.sum()),
        "announced_changes": total,
        "change_precision_lenient": lenient_right / total if total else float("nan"),
        "change_recall_3_lenient": lenient_recall(3),
        "change_recall_6_lenient": lenient_recall(6),
        "median_delay_lenient": float(np.median(lenient_delays)) if len(lenient_delays) else None,
        "changes_before_first_label": float(early.sum() / denom) if denom else float("nan"),
        "recall_3_after_first_label": recall(3, scorable & ~early),
        "recall_6_after_first_label": recall(6, scorable & ~early),
    }


def announced_breakdown(
    truth: np.ndarray, announced: list[tuple[int, int, bool]], match_windows: int = 6
) -> dict[str, float]:
    """Shares of the announced changes, as (customer row, window, new label is the true one):
    ``right`` within ``match_windows`` windows of the true change (precision), ``wrong_label``
    within them, ``late`` after them, ``before_change`` and
    ``stable_customer`` (no true change at all). They sum to 1."""
    start = true_changes(truth)
    counts = dict.fromkeys(ANNOUNCED, 0)
    for row, window, right in announced:
        counts[_kind(start[row], window, right, match_windows)] += 1
    total = len(announced)
    return {k: v / total if total else float("nan") for k, v in counts.items()}


def calibration_error(conf: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the share-weighted gap between confidence and accuracy over
    equal-width confidence bins."""
    if not len(conf):
        return float("nan")
    b = np.minimum((conf * bins).astype(int), bins - 1)
    gap = 0.0
    for i in range(bins):
        sel = b == i
        if sel.any():
            gap += sel.sum() * abs(conf[sel].mean() - right[sel].mean())
    return float(gap / len(conf))


def reliability(conf: np.ndarray, right: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per confidence bin: events, mean confidence, share right (the reliability diagram's points)."""
    b = np.minimum((conf * bins).astype(int), bins - 1)
    return [
        {"bin": i / bins, "events": int((b == i).sum()), "confidence": float(conf[b == i].mean()),
         "right": float(right[b == i].mean())}
        for i in range(bins)
        if (b == i).any()
    ]  # fmt: skip
