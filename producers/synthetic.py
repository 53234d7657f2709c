"""A synthetic bank whose customers spend according to a latent Big-Five personality.

Every customer is drawn from one of 20 micro-segments (a dominant trait and a
second trait), so the truth the segmentation should recover is known. Monthly
spending follows the personality through the loading table, with the noise that
makes raw spending a poor segmenter: month-to-month jitter, big one-off
purchases (life events) and months with no activity at all.

Personality may change: a share of customers switches to a new dominant and
second trait at a random month (a life change), another share drifts there over
several months. Spending may be seasonal (December gifts, summer travel), which
moves everybody's mix and is *not* personality. The truth is kept per window, so
a segmentation that follows changes can be scored window by window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from segstream.core.personality import CATEGORIES, CATEGORY_INDEX, LOADINGS, TRAIT_ABBR, TRAITS

_BASE = np.zeros(len(CATEGORIES))
for _cat, _w in {
    "groceries": 1.6,
    "restaurants": 0.4,
    "fuel": 0.5,
    "public_transport": 0.3,
    "subscriptions": 0.3,
    "savings": 0.6,
    "insurance": 0.4,
}.items():
    _BASE[CATEGORY_INDEX[_cat]] = _w
_LIFE_EVENT_CATEGORIES = np.array(
    [CATEGORY_INDEX[c] for c in ("electronics", "travel", "healthcare", "home_garden", "fuel")]
)

# Calendar-month tilts of the spending mix (log-weights), the same for everybody.
_SEASONS = np.zeros((12, len(CATEGORIES)))
for _month, _tilts in {
    11: {"gifts": 1.6, "electronics": 0.8, "fashion": 0.6, "beauty": 0.5, "charity": 0.6},  # December
    6: {"travel": 1.4, "hotels": 1.4, "outdoor": 0.8, "restaurants": 0.4},  # July
    7: {"travel": 1.6, "hotels": 1.6, "outdoor": 0.8, "restaurants": 0.4},  # August
}.items():
    for _cat, _w in _tilts.items():
        _SEASONS[_month, CATEGORY_INDEX[_cat]] = _w
_PAIRS = np.array([(d, s) for d in range(5) for s in range(5) if d != s])


def _draw_traits(rng: np.random.Generator, pairs: np.ndarray) -> np.ndarray:
    """Trait vectors whose dominant and second trait are the given (d, s) pairs."""
    n = len(pairs)
    traits = rng.uniform(0.15, 0.5, (n, 5))
    traits[np.arange(n), pairs[:, 1]] = rng.uniform(0.56, 0.72, n)
    traits[np.arange(n), pairs[:, 0]] = rng.uniform(0.78, 0.95, n)
    return traits


@dataclass(frozen=True)
class GeneratorConfig:
    customers: int = 1000
    months: int = 24
    seed: int = 0
    start_year: int = 2023
    start_month: int = 1
    tx_per_month: float = 20.0
    personality_strength: float = 1.0  # how strongly traits tilt the spending mix
    monthly_noise: float = 0.35  # sd of month-to-month log-weight jitter per category
    life_event_rate: float = 0.03  # chance per customer-month of a big one-off purchase
    missing_month_rate: float = 0.04  # chance per customer-month of no activity
    currency: str = "EUR"
    change_share: float = 0.0  # customers whose personality switches abruptly at a random month
    drift_share: float = 0.0  # customers whose personality moves to a new one over several months
    drift_months: int = 6  # how long a drift takes
    seasonal: bool = False  # December and summer tilts of everybody's spending
    change_period: tuple[float, float] = (0.25, 0.75)  # changes start in this part of the history (fractions)


@dataclass
class MonthBatch:
    """One calendar month of events, columnar and sorted by time."""

    month: int
    customer: np.ndarray  # int index into truth
    ts: np.ndarray  # epoch seconds
    category: np.ndarray  # int index into CATEGORIES
    amount: np.ndarray  # EUR, rounded to cents


def month_start(year: int, month0: int) -> float:
    """Epoch of the first instant of month ``month0`` (0-based) counted from ``year``-01."""
    y, m = divmod(month0, 12)
    return datetime(year + y, m + 1, 1, tzinfo=UTC).timestamp()


class SyntheticBank:
    def __init__(self, config: GeneratorConfig):
        self.config = cfg = config
        rng = np.random.default_rng(cfg.seed)
        n = cfg.customers
        pick = _PAIRS[rng.integers(0, len(_PAIRS), n)]
        traits = _draw_traits(rng, pick)
        self.traits = traits  # the personality at month 0
        self.income = np.round(np.exp(rng.normal(np.log(3200), 0.45, n)), 2)  # monthly, EUR
        self.spend_ratio = rng.uniform(0.45, 0.85, n)
        self.customer_ids = np.array([f"C{i:07d}" for i in range(n)])
        # customer-level outcomes for transfer learning, from their own random stream so the
        # events above do not change when these do
        out_rng = np.random.default_rng([cfg.seed, 0])
        c, ne = traits[:, 1] - 0.5, traits[:, 4] - 0.5
        self.liquidity_index = 2.0 * c - 1.5 * ne + 2.0 * (0.65 - self.spend_ratio) + out_rng.normal(0, 0.25, n)
        p_default = 1 / (1 + np.exp(-(-2.6 + 4.0 * ne - 4.0 * c + 4.0 * (self.spend_ratio - 0.65))))
        self.default = (out_rng.random(n) < p_default).astype(np.int8)
        self._draw_changes(pick)

    def _draw_changes(self, pick: np.ndarray) -> None:
        """Who changes, when, and to what: from a random stream of their own, so a bank
        without changes spends exactly as it did before changes existed."""
        cfg, n = self.config, self.config.customers
        rng = np.random.default_rng([cfg.seed, 2])
        kind = rng.random(n)
        abrupt = kind < cfg.change_share
        drift = ~abrupt & (kind < cfg.change_share + cfg.drift_share)
        # a new dominant *and* a new second trait
        ok = (_PAIRS[None, :, 0] != pick[:, None, 0]) & (_PAIRS[None, :, 1] != pick[:, None, 1])
        choice = np.array([rng.choice(np.flatnonzero(row)) for row in ok]) if n else np.zeros(0, int)
        self.new_traits = np.where((abrupt | drift)[:, None], _draw_traits(rng, _PAIRS[choice]), self.traits)
        lo = max(int(cfg.months * cfg.change_period[0]), 1)
        hi = max(int(cfg.months * cfg.change_period[1]), lo + 1)
        start = rng.integers(lo, hi, n)
        self.change_start = np.where(abrupt | drift, start, np.iinfo(np.int32).max)  # first month of the change
        self.change_length = np.where(drift, max(cfg.drift_months, 1), 1)  # months until it is complete

    def traits_at(self, m: int) -> np.ndarray:
        """[n, 5] personality in month ``m``."""
        w = np.clip((m - self.change_start + 1) / self.change_length, 0.0, 1.0)[:, None]
        return self.traits + w * (self.new_traits - self.traits)

    def micro_segments(self) -> np.ndarray:
        """[n, months] true micro-segment per customer and month (e.g. ``O>E``): the yardstick per window."""
        out = np.empty((self.config.customers, self.config.months), dtype=object)
        for m in range(self.config.months):
            order = np.argsort(-self.traits_at(m), axis=1)[:, :2]
            out[:, m] = [f"{TRAIT_ABBR[a]}>{TRAIT_ABBR[b]}" for a, b in order]
        return out

    @property
    def changes(self) -> bool:
        return self.config.change_share > 0 or self.config.drift_share > 0

    def _tilt(self, m: int) -> np.ndarray:
        cfg = self.config
        tilt = _BASE[None, :] + cfg.personality_strength * (self.traits_at(m) - 0.5) @ LOADINGS.T * 2.0  # [n, K]
        if cfg.seasonal:
            tilt = tilt + _SEASONS[(cfg.start_month - 1 + m) % 12]
        return tilt

    @property
    def truth(self) -> pd.DataFrame:
        """Each customer's true personality and segments at the last month, the yardstick for quality."""
        traits = self.traits_at(self.config.months - 1)
        order = np.argsort(-traits, axis=1)
        df = pd.DataFrame(traits, columns=list(TRAITS))
        df.insert(0, "customer_id", self.customer_ids)
        df.insert(1, "income", self.income)
        df["dominant"] = [TRAITS[i] for i in order[:, 0]]
        df["second"] = [TRAITS[i] for i in order[:, 1]]
        df["coarse_segment"] = [TRAIT_ABBR[i] for i in order[:, 0]]
        df["micro_segment"] = [f"{TRAIT_ABBR[a]}>{TRAIT_ABBR[b]}" for a, b in order[:, :2]]
        df["liquidity_index"] = self.liquidity_index
        df["default"] = self.default
        return df

    def month(self, m: int) -> MonthBatch:
        """Events of month ``m``; deterministic per (seed, m) so months can be generated in any order."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 1 + m])
        tilt = self._tilt(m)
        n, k = tilt.shape
        logits = tilt + rng.normal(0.0, cfg.monthly_noise, (n, k))
        shares = np.exp(logits - logits.max(1, keepdims=True))
        shares /= shares.sum(1, keepdims=True)
        active = rng.random(n) >= cfg.missing_month_rate
        n_tx = np.where(active, rng.poisson(cfg.tx_per_month, n) + 1, 0)
        cust = np.repeat(np.arange(n), n_tx)
        cum = np.cumsum(shares, axis=1)[cust]
        cat = np.minimum((rng.random(len(cust))[:, None] > cum).sum(1), k - 1)
        budget = self.income * self.spend_ratio * np.exp(rng.normal(0, 0.1, n))
        amount = budget[cust] / np.maximum(n_tx[cust], 1) * rng.lognormal(-0.125, 0.5, len(cust))

        life = np.flatnonzero(active & (rng.random(n) < cfg.life_event_rate))
        cust = np.concatenate([cust, life])
        cat = np.concatenate([cat, rng.choice(_LIFE_EVENT_CATEGORIES, len(life))])
        amount = np.concatenate([amount, self.income[life] * rng.uniform(0.5, 3.0, len(life))])

        t0 = month_start(cfg.start_year, cfg.start_month - 1 + m)
        t1 = month_start(cfg.start_year, cfg.start_month + m)
        ts = np.floor(rng.uniform(t0, t1, len(cust)))
        order = np.argsort(ts, kind="stable")
        return MonthBatch(m, cust[order], ts[order], cat[order], np.round(amount[order], 2).clip(0.01))

    def months(self) -> Iterator[MonthBatch]:
        for m in range(self.config.months):
            yield self.month(m)

    def events(self) -> Iterator[dict]:
        """Events in the producer schema, in time order."""
        for m in range(self.config.months):
            yield from self.month_events(m)

    def month_events(self, m: int) -> Iterator[dict]:
        """Month ``m``'s events in the producer schema, in time order: a bank too large to hold
        as dicts at once (20,000 customers x 28 months is 12M of them) is streamed a month at a time."""
        cfg, mb = self.config, self.month(m)
        ids = self.customer_ids.tolist()
        seq = np.zeros(cfg.customers, np.int64)
        for c, ts, k, a in zip(mb.customer.tolist(), mb.ts.tolist(), mb.category.tolist(), mb.amount.tolist()):
            seq[c] += 1
            yield {
                "event_id": f"{ids[c]}-{mb.month:03d}-{seq[c]:04d}",
                "customer_id": ids[c],
                "timestamp": datetime.fromtimestamp(ts, tz=UTC).isoformat(),
                "amount": a,
                "currency": cfg.currency,
                "category": CATEGORIES[k],
                "income": float(self.income[c]),
            }

    def monthly_spend(self) -> tuple[np.ndarray, np.ndarray]:
        """[N, T, K] spend as a fraction of monthly income, and the [N, T] mask of active months.

        The same numbers the stream's windows produce, without building events: the
        fast path for training.
        """
        n, k, t = self.config.customers, len(CATEGORIES), self.config.months
        out = np.zeros((n, t, k))
        for mb in self.months():
            np.add.at(out[:, mb.month, :], (mb.customer, mb.category), mb.amount)
        mask = out.sum(2) > 0
        return out / self.income[:, None, None], mask
