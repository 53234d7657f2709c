"""Event sources besides the generator: event files and replays of the shared real data sets.

Real data sets carry no merchant category of our kind, so each replay maps
what it has to the nearest category and says so; they exercise the pipeline
with real timing and amounts, not the personality model.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pandas as pd

EVENT_COLUMNS = ("event_id", "customer_id", "timestamp", "amount", "currency", "category", "income")


def from_file(path: Path) -> Iterator[dict]:
    """Events from a CSV or Parquet file with the producer schema's columns."""
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = {"event_id", "customer_id", "timestamp", "amount", "currency", "category"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    for row in df.to_dict("records"):
        ev = {k: row[k] for k in EVENT_COLUMNS if k in row and not (isinstance(row[k], float) and pd.isna(row[k]))}
        ev["timestamp"] = str(ev["timestamp"])
        ev["customer_id"] = str(ev["customer_id"])
        yield ev


def cdnow(path: Path) -> Iterator[dict]:
    """CDNOW purchases (1997-98) as 'entertainment' spending in USD, in time order."""
    df = pd.read_csv(path, sep=r"\s+", header=None, names=["customer_id", "date", "n_cds", "amount"])
    df = df[df.amount > 0].sort_values("date", kind="stable")
    for i, r in enumerate(df.itertuples(index=False)):
        d = datetime.strptime(str(r.date), "%Y%m%d").replace(hour=12, tzinfo=timezone.utc)
        yield {"event_id": f"cdnow-{i}", "customer_id": f"cdnow-{r.customer_id}", "timestamp": d.isoformat(),
               "amount": float(r.amount), "currency": "USD", "category": "entertainment"}


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
            ts = datetime(yy, mm, day, 9, tzinfo=timezone.utc)
            yield {"event_id": f"berka-{r.order_id}-{yy}{mm:02d}", "customer_id": f"berka-{r.account_id}",
                   "timestamp": ts.isoformat(), "amount": float(r.amount), "currency": "CZK", "category": r.category}
