"""Replays of the shared real data sets (bank exports: producers/export.py).

Real data sets carry no merchant category of our kind, so each replay maps
what it has to the nearest category and says so; they exercise the pipeline
with real timing and amounts, not the personality model.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd


def cdnow(path: Path) -> Iterator[dict]:
    """CDNOW purchases (1997-98) as 'entertainment' spending in USD, in time order."""
    df = pd.read_csv(path, sep=r"\s+", header=None, names=["customer_id", "date", "n_cds", "amount"])
    df = df[df.amount > 0].sort_values("date", kind="stable")
    for i, r in enumerate(df.itertuples(index=False)):
        d = datetime.strptime(str(r.date), "%Y%m%d").replace(hour=12, tzinfo=UTC)
        yield {
            "event_id": f"cdnow-{i}",
            "customer_id": f"cdnow-{r.customer_id}",
            "timestamp": d.isoformat(),
            "amount": float(r.amount),
            "currency": "USD",
            "category": "entertainment",
        }


_BERKA_CATEGORY = {"POJISTNE": "insurance", "SIPO": "home_garden", "LEASING": "fuel", "UVER": "savings"}


def berka_orders(folder: Path, months: int = 12, start: str = "1997-01") -> Iterator[dict]:
    """Berka standing orders (order.asc) replayed monthly for ``months`` months, in CZK."""
    orders = pd.read_csv(folder / "order.asc", sep=";")
    orders["category"] = orders["k_symbol"].str.strip().map(_BERKA_CATEGORY).fillna("subscriptions")
    y, m = map(int, start.split("-"))
    for k in range(months):
        yy, mm = y + (m - 1 + k) // 12, (m - 1 + k) % 12 + 1
        for r in orders.itertuples(index=False):
            day = 1 + int(r.order_id) % 28
            ts = datetime(yy, mm, day, 9, tzinfo=UTC)
            yield {
                "event_id": f"berka-{r.order_id}-{yy}{mm:02d}",
                "customer_id": f"berka-{r.account_id}",
                "timestamp": ts.isoformat(),
                "amount": float(r.amount),
                "currency": "CZK",
                "category": r.category,
            }
