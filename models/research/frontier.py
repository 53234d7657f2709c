"""A bank's frontier, and what even an announcer that knows when each change happened can reach.

The **frontier** after k windows: a multinomial logistic classifier trained on another
generated bank of the same kind, with each customer's true change month known, reads only
the k windows after the change and names the micro-segment; the share it names right on
this bank's changed customers is what any detector restarting at the true change could
reach from the same spending. Recall within k is measured against it.

The **oracle announcer** asks whether issue 31's goals can hold *together*. It knows each
change's month, never alarms on a stable customer, and after k windows announces the
frontier classifier's label once that classifier's probability passes a threshold of its
choice (one per window for windows 1, 2, 3, one for 4-5 and one for 6; or never). It is
a bound in the product's favour: the product does not know the month, and its precision
also counts the corrections of stable customers the oracle never makes. If no choice of
thresholds gives this oracle precision 0.85 while it recalls 85% of the frontier, a product
whose labels are no surer than the frontier's (the frontier's own premise) cannot either; the
report says so per bank rather than leaving a gap that looks like a tuning problem. (A
better classifier would move the frontier and this bound together.)
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from segstream.core.personality import log_ratio_traits
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.quality import true_changes

KS = (1, 2, 3, 6)
READ = 6  # windows after a change the frontier and the oracle read (recall's longest horizon)
GOAL_SHARE = 0.85  # issue 31: recall within k at least this share of the frontier after k
GOAL_PRECISION = 0.85  # ... and precision at least this
THRESHOLDS = np.round(np.arange(0.0, 0.951, 0.05), 2)  # the oracle's choices, and "never"


def _features(spend: np.ndarray, month_of_year: np.ndarray) -> np.ndarray:
    """What the frontier's classifier reads from k windows' summed spend [n, K]: the log-ratio
    traits, the shares, the volume, and the calendar month of the last window (seasons)."""
    total = spend.sum(1, keepdims=True)
    shares = spend / np.where(total > 0, total, 1.0)
    season = np.eye(12)[month_of_year]
    return np.hstack([log_ratio_traits(spend), shares, np.log1p(total * 100), season])


def _windows_after(bank: SyntheticBank, spend: np.ndarray, starts: np.ndarray, k: int):
    """Per customer row with a start month, the spend summed over months start..start+k-1."""
    idx = np.arange(len(starts))
    out = np.zeros((len(starts), spend.shape[2]))
    for j in range(k):
        out += spend[idx, starts + j]
    moy = (bank.config.start_month - 1 + starts + k - 1) % 12
    return out, moy


def _examples(bank: SyntheticBank, k_max: int, training: bool) -> tuple[np.ndarray, ...]:
    """(spend, first window, truth) of the customers a frontier learns from or is scored on.

    Training reads the changed customers after their change and stable ones from a random month
    (a personality read from k windows of spending, whoever it belongs to); scoring reads the
    changed customers that recall counts (segstream/quality.py)."""
    truth = bank.micro_segments()
    spend, _ = bank.monthly_spend()
    start = true_changes(truth)
    t = truth.shape[1]
    if training:
        rng = np.random.default_rng(0)
        start = np.where(start >= 0, start, rng.integers(0, t - k_max + 1, len(start)))
        rows = np.flatnonzero(start + k_max <= t)
    else:
        rows = np.flatnonzero((start >= 0) & (start + 6 <= t))
    return spend[rows], start[rows], truth[rows]


def _labelled(bank: SyntheticBank, examples: tuple[np.ndarray, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of k windows from each example's first, and its true micro-segment at the k-th."""
    spend, start, truth = examples
    x, moy = _windows_after(bank, spend, start, k)
    return _features(x, moy), truth[np.arange(len(start)), start + k - 1]


class Readings(NamedTuple):
    """Per window after the change (rows, 1..READ) and changed customer (columns): the frontier
    classifier's probability for its label, and whether that label is the true micro-segment."""

    probability: np.ndarray  # [READ, n]
    right: np.ndarray  # [READ, n] bool

    def frontier(self, k: int) -> float:
        return float(self.right[k - 1].mean())


def readings(cfg: GeneratorConfig, read: int = READ) -> Readings | None:
    """The frontier classifier after 1..``read`` windows on this bank's changed customers, trained
    on a bank of the same kind (another seed, at least 30% change) with change months known."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_bank = SyntheticBank(replace(cfg, seed=cfg.seed + 10_000, change_share=max(cfg.change_share, 0.3)))
    test_bank = SyntheticBank(cfg)
    test = _examples(test_bank, READ, training=False)
    if not len(test[0]):  # no changed customer to score
        return None
    train = _examples(train_bank, READ, training=True)
    prob, right = [], []
    for k in range(1, read + 1):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
        clf.fit(*_labelled(train_bank, train, k))
        x, y = _labelled(test_bank, test, k)
        p = clf.predict_proba(x)
        prob.append(p.max(1))
        right.append(clf.classes_[p.argmax(1)] == y)
    return Readings(np.array(prob), np.array(right))


def frontiers(r: Readings | None, ks: tuple[int, ...] = KS) -> dict[int, float]:
    """The frontier after each of ``ks`` windows (nan where the bank has no changed customer)."""
    return {k: float("nan") if r is None else r.frontier(k) for k in ks}


def frontier(cfg: GeneratorConfig, ks: tuple[int, ...] = KS) -> dict[int, float]:
    """The share of this bank's changed customers a classifier names right k windows after the
    true change."""
    return frontiers(readings(cfg, max(ks)), ks)


class Sweep(NamedTuple):
    """Every threshold setting the oracle may choose, flattened: its precision and recall."""

    precision: np.ndarray
    recall_3: np.ndarray
    recall_6: np.ndarray


def sweep(r: Readings, thresholds: np.ndarray = THRESHOLDS) -> Sweep:
    """The oracle announcer under every setting of its thresholds.

    An announcement goes out at the first window after the change whose probability passes that
    window's threshold (one each for windows 1, 2, 3 and 6, one shared by 4 and 5; or never), and
    is the customer's only one: precision is the share right, recall within k the share right and
    out by window k. The early three thresholds are laid out as rows and the late two as columns
    of one table, so the sweep is a matrix product.
    """
    n = r.probability.shape[1]
    choices = len(thresholds) + 1  # the last choice passes nothing: never
    level = np.searchsorted(thresholds, r.probability, side="right")  # threshold j passes iff j < level
    early = np.array(list(itertools.product(range(choices), repeat=3)))  # [E, 3]
    sure = early[:, :, None] < level[None, :3]  # [E, 3, n]
    out = sure.any(1)
    first = sure.argmax(1)
    early_right = out & np.take_along_axis(np.broadcast_to(r.right[:3], sure.shape), first[:, None], 1)[:, 0]
    # per customer, what windows 4-6 add under each (4-5, 6) threshold pair: [n, choices, choices]
    j = np.arange(choices)[:, None]
    at4, at5, at6 = (j < level[w][None, :] for w in (3, 4, 5))  # [choices, n] each
    late45 = (at4 | at5).T[:, :, None]
    right45 = np.where(at4, r.right[3], r.right[4]).T[:, :, None]
    six = at6.T[:, None, :]
    late = late45 | six
    late_right = np.where(late45, right45, six & r.right[5][:, None, None])
    waiting = (~out).astype(np.float64)  # [E, n]
    announced = out.sum(1)[:, None] + waiting @ late.reshape(n, -1)  # [E, choices**2]
    right = early_right.sum(1)[:, None] + waiting @ late_right.reshape(n, -1)
    precision = np.where(announced > 0, right / np.maximum(announced, 1), 0.0)
    recall3 = np.broadcast_to(early_right.mean(1)[:, None], precision.shape)
    return Sweep(precision.ravel(), recall3.ravel(), (right / n).ravel())


def oracle(r: Readings, share: float = GOAL_SHARE, precision_goal: float = GOAL_PRECISION) -> dict[str, float]:
    """The oracle announcer's best precision while it recalls ``share`` of the frontier within 3
    windows, within 6, and both; and its best recall within 3 / 6 at ``precision_goal``."""
    s = sweep(r)
    ok3, ok6 = s.recall_3 >= share * r.frontier(3), s.recall_6 >= share * r.frontier(6)
    sure_enough = s.precision >= precision_goal

    def best(values: np.ndarray, where: np.ndarray) -> float:
        return float(values[where].max()) if where.any() else float("nan")  # no setting gets there

    return {
        "precision_at_recall_3": best(s.precision, ok3),
        "precision_at_recall_6": best(s.precision, ok6),
        "precision_at_both": best(s.precision, ok3 & ok6),
        "recall_3_at_precision": best(s.recall_3, sure_enough),
        "recall_6_at_precision": best(s.recall_6, sure_enough),
    }


def pareto(r: Readings, step: float = 0.02) -> list[dict[str, float]]:
    """The oracle's best precision at each level of recall within 3 windows (levels ``step``
    apart): the curve the tracking report draws beside the product's settings."""
    s = sweep(r)
    out = []
    for level in np.arange(step, s.recall_3.max() + 1e-9, step):
        ok = s.recall_3 >= level
        out.append({"recall_3": round(float(level), 4), "precision": float(s.precision[ok].max())})
    return out
