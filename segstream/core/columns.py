"""A batch of valid transactions as columns: what the window aggregator consumes.

Per-event Python work is what limits a streaming worker, so everything after
decoding runs on arrays: window numbers, lateness, duplicate checks and the sums
per category are a handful of numpy calls per batch instead of one call per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import xxhash

from .events import FX_TO_EUR
from .personality import CATEGORY_INDEX


class TransactionLike(Protocol):
    """What both the fast wire struct and the validated pydantic model offer."""

    event_id: str
    customer_id: str
    amount: float
    currency: str
    category: str
    income: float | None

    @property
    def timestamp(self): ...


def event_keys(customer_ids: Sequence[str], event_ids: Sequence[str | None]) -> np.ndarray:
    """64-bit digests of (customer, event id): what dedup keeps and checkpoints persist.

    xxh3 is stable across processes and versions (unlike ``hash``), and cheap
    enough to run on every event; 0 is reserved for events without an id. The
    customer id goes in with its length, so no pair of ids can spell another pair
    (``COL`` + ``A\x1fx`` against ``COL\x1fA`` + ``x``).
    """
    h = xxhash.xxh3_64_intdigest
    return np.fromiter(
        (
            (h(f"{len(c)}:{c}{e}".encode("utf-8", "surrogatepass")) or 1) if e is not None else 0
            for c, e in zip(customer_ids, event_ids)
        ),
        dtype=np.uint64,
        count=len(customer_ids),
    )


@dataclass
class TransactionColumns:
    customer_id: list[str]
    timestamp: np.ndarray  # [n] float64 epoch seconds
    category: np.ndarray  # [n] int64 index into CATEGORIES
    amount_eur: np.ndarray  # [n] float64
    income_eur: np.ndarray  # [n] float64 monthly income, NaN when the event carried none
    key: np.ndarray  # [n] uint64 dedup digest (see event_keys)
    position: np.ndarray  # [n] int64 index of each event in the batch it was decoded from

    def __len__(self) -> int:
        return len(self.customer_id)

    def take(self, rows: np.ndarray) -> TransactionColumns:
        return TransactionColumns(
            [self.customer_id[i] for i in rows.tolist()],
            self.timestamp[rows],
            self.category[rows],
            self.amount_eur[rows],
            self.income_eur[rows],
            self.key[rows],
            self.position[rows],
        )

    @classmethod
    def build(cls, txs: Sequence[TransactionLike], positions: Iterable[int] | None = None) -> TransactionColumns:
        """Columns from decoded events; amounts converted to EUR, categories to indices."""
        n = len(txs)
        cids = [t.customer_id for t in txs]
        fx = np.fromiter((FX_TO_EUR[t.currency] for t in txs), np.float64, n)
        income = np.array([t.income for t in txs], dtype=np.float64) if n else np.zeros(0)  # None -> NaN
        return cls(
            customer_id=cids,
            timestamp=np.fromiter((t.timestamp.timestamp() for t in txs), np.float64, n),
            category=np.fromiter((CATEGORY_INDEX[t.category] for t in txs), np.int64, n),
            amount_eur=np.fromiter((t.amount for t in txs), np.float64, n) * fx,
            income_eur=income * fx,
            key=event_keys(cids, [t.event_id for t in txs]),
            position=np.arange(n, dtype=np.int64) if positions is None else np.fromiter(positions, np.int64, n),
        )

    @classmethod
    def of(cls, rows: Sequence[tuple[str, float, int, float, float | None, str | None]]) -> TransactionColumns:
        """From (customer, time, category index, amount EUR, income EUR, event id) tuples: for tests and tools."""
        cids = [r[0] for r in rows]
        return cls(
            cids,
            np.array([r[1] for r in rows], np.float64),
            np.array([r[2] for r in rows], np.int64),
            np.array([r[3] for r in rows], np.float64),
            np.array([r[4] for r in rows], np.float64),  # None -> NaN
            event_keys(cids, [r[5] for r in rows]),
            np.arange(len(rows), dtype=np.int64),
        )
