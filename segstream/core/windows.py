"""Per-customer tumbling windows in event time, closed by a watermark.

The watermark is the largest event time seen minus the allowed lateness; a
window closes once its end is at or behind the watermark. An event for a window
that has already closed is *late*: it is counted and reported, never silently
merged or dropped. Calendar months are the default window because that is how a
bank reads spending against a monthly income.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Iterable, Literal

import numpy as np

Outcome = Literal["ok", "late", "duplicate"]


@dataclass(frozen=True)
class WindowSpec:
    months: int = 1  # calendar months per window; 0 means fixed ``seconds``
    seconds: int = 0

    def __post_init__(self) -> None:
        if (self.months > 0) == (self.seconds > 0):
            raise ValueError("set exactly one of months or seconds")

    def index(self, ts: float) -> int:
        """Window number of an event time; consecutive windows have consecutive numbers."""
        if self.seconds:
            return int(ts // self.seconds)
        d = datetime.fromtimestamp(ts, tz=timezone.utc)
        return (d.year * 12 + d.month - 1) // self.months

    def start(self, index: int) -> float:
        if self.seconds:
            return float(index * self.seconds)
        return _month_start(index * self.months)

    def end(self, index: int) -> float:
        return self.start(index + 1)


@lru_cache(maxsize=4096)
def _month_start(month: int) -> float:
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=timezone.utc).timestamp()


@dataclass
class ClosedWindow:
    customer_id: str
    index: int
    start: float
    end: float
    spend: np.ndarray  # [K] spend per category in EUR
    n_events: int
    income: float | None  # monthly income in EUR, if any event carried one

    def normalised_spend(self) -> np.ndarray:
        """Spend per category as a fraction of monthly income (of total spend if income is unknown)."""
        denom = self.income if self.income else float(self.spend.sum()) or 1.0
        return self.spend / denom


def event_key(event_id: str) -> int:
    """Stable 64-bit digest of an event id: what dedup keeps, and what survives a restart."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


@dataclass
class OpenWindow:
    spend: list[float]
    n: int = 0
    income: float | None = None
    ids: set[int] = field(default_factory=set)  # event_key of every event counted


class WindowAggregator:
    """Accumulates transactions into open windows and hands out the closed ones."""

    def __init__(self, spec: WindowSpec, n_categories: int, allowed_lateness_s: float = 0.0):
        self.spec = spec
        self.n_categories = n_categories
        self.allowed_lateness_s = float(allowed_lateness_s)
        self.max_event_time = float("-inf")
        self._open: dict[int, dict[str, OpenWindow]] = {}  # window index -> customer -> accumulator
        self.counts: dict[str, int] = {"ok": 0, "late": 0, "duplicate": 0}
        self._bounds: tuple[float, float, int] = (0.0, 0.0, 0)  # last window seen: start, end, index
        self._dirty: set[tuple[int, str]] = set()  # changed since the last checkpoint
        self._closed: list[tuple[int, str]] = []  # closed since the last checkpoint

    @property
    def watermark(self) -> float:
        return self.max_event_time - self.allowed_lateness_s

    @property
    def open_windows(self) -> int:
        return sum(len(v) for v in self._open.values())

    def add(
        self,
        customer_id: str,
        ts: float,
        category: int,
        amount: float,
        income: float | None = None,
        event_id: str | None = None,
    ) -> Outcome:
        lo, hi, idx = self._bounds
        if not lo <= ts < hi:  # events arrive mostly in order: one calendar lookup per window, not per event
            idx = self.spec.index(ts)
            lo, hi = self.spec.start(idx), self.spec.end(idx)
            self._bounds = (lo, hi, idx)
        if hi <= self.watermark:
            self.counts["late"] += 1
            return "late"
        bucket = self._open.get(idx)
        if bucket is None:
            bucket = self._open[idx] = {}
        acc = bucket.get(customer_id)
        if acc is None:
            acc = bucket[customer_id] = OpenWindow(spend=[0.0] * self.n_categories)
        if event_id is not None:
            key = event_key(event_id)
            if key in acc.ids:
                self.counts["duplicate"] += 1
                return "duplicate"
            acc.ids.add(key)
        self._dirty.add((idx, customer_id))
        acc.spend[category] += amount
        acc.n += 1
        if income is not None:
            acc.income = income
        if ts > self.max_event_time:
            self.max_event_time = ts
        self.counts["ok"] += 1
        return "ok"

    def poll(self) -> list[ClosedWindow]:
        """Close and return every window whose end the watermark has passed, oldest first."""
        wm = self.watermark
        due = sorted(i for i in self._open if self.spec.end(i) <= wm)
        return [w for i in due for w in self._close(i)]

    def flush(self) -> list[ClosedWindow]:
        """Close everything (end of a finite stream)."""
        return [w for i in sorted(self._open) for w in self._close(i)]

    def _close(self, idx: int) -> list[ClosedWindow]:
        start, end = self.spec.start(idx), self.spec.end(idx)
        out = []
        for cid, a in self._open.pop(idx).items():
            self._dirty.discard((idx, cid))
            self._closed.append((idx, cid))
            out.append(ClosedWindow(cid, idx, start, end, np.asarray(a.spend), a.n, a.income))
        return out

    # --- checkpointing: what a store needs to persist, and how to come back --------

    def checkpoint_delta(self) -> tuple[list[tuple[int, str, OpenWindow]], list[tuple[int, str]]]:
        """Open windows changed and windows closed since the last call."""
        upserts = [(i, cid, self._open[i][cid]) for i, cid in self._dirty]
        closed, self._closed, self._dirty = self._closed, [], set()
        return upserts, closed

    def restore(self, windows: Iterable[tuple[int, str, OpenWindow]], max_event_time: float) -> None:
        """Rebuild from a checkpoint: the open windows and the event time the watermark was at."""
        for idx, cid, acc in windows:
            self._open.setdefault(idx, {})[cid] = acc
        self.max_event_time = max(self.max_event_time, max_event_time)
