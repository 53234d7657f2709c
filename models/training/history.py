"""A bank's own history as training data: its export, windowed exactly as the worker windows it.

Lines go through the worker's decode path (``ingest_payloads``: the same validation,
merchant-code mapping and window aggregator), so a model never trains on windows the
stream would build differently. Refused lines are counted in the report, not guessed at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from segstream.assembly import event_limits, window_aggregator, window_spec
from segstream.config import Settings
from segstream.core.pipeline import ingest_payloads
from segstream.core.windows import normalised_spend
from segstream.producers.export import ExportMapping, ExportReport, checked_events, read_export


@dataclass
class History:
    spend_fraction: np.ndarray  # [N, T, K] window spend as a fraction of income, calendar-aligned
    active: np.ndarray  # [N, T] windows with spending
    customers: list[str]
    first_month: int  # calendar month (0 = January) of the first window
    first_window: str  # its start, ISO date
    report: ExportReport


def load_history(
    path: Path,
    mapping: ExportMapping,
    settings: Settings,
    batch: int = 50_000,
    progress: Callable[[int], None] = lambda _: None,
) -> History:
    if settings.window_months != 1:
        raise ValueError("training from transactions needs monthly windows (SEGSTREAM_WINDOW_MONTHS=1)")
    report = ExportReport()
    limits = event_limits(settings)
    windows = window_aggregator(settings)
    closed = []
    buf: list[bytes] = []

    def feed() -> None:
        ingest_payloads(windows, buf, limits)
        closed.extend(windows.poll())
        buf.clear()

    def rows():
        for row in read_export(path, mapping):
            progress(1)
            yield row

    for ev in checked_events(rows(), limits, report):
        buf.append(orjson.dumps(ev))
        if len(buf) >= batch:
            feed()
    feed()
    closed.extend(windows.flush())
    if not closed:
        raise ValueError(f"{path}: no purchase windows (lines {report.lines}, refused {len(report.rejected)})")
    customers = sorted({w.customer_id for w in closed})
    row_of = {c: i for i, c in enumerate(customers)}
    first, last = min(w.index for w in closed), max(w.index for w in closed)
    spend = np.zeros((len(customers), last - first + 1, len(closed[0].spend)))
    frac = normalised_spend(closed)
    for w, f in zip(closed, frac):
        spend[row_of[w.customer_id], w.index - first] += f
    start = datetime.fromtimestamp(window_spec(settings).start(first), tz=UTC)
    return History(spend, spend.sum(2) > 0, customers, start.month - 1, start.date().isoformat(), report)
