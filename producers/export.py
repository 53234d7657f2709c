"""A bank's transaction export, as it is, into segstream events.

Exports differ in everything but meaning: column names, separators, date formats,
decimal commas, whether a purchase is a negative or a positive amount, a column
that says debit or credit. :class:`ExportMapping` says how to read one (a small
YAML file, or ``--map key=value`` flags); :func:`read_export` turns each line into
an event or a reason with its line number, so a dry run can list every problem
before anything is published. Credits (salary, refunds) are not spending: they are
skipped and counted, not refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, model_validator

from segstream.core.categories import OTHER
from segstream.core.events import EventRejected, validate_event
from segstream.core.wire import Limits


class ExportMapping(BaseModel):
    """Column names and conventions of one export. The defaults read segstream's own event schema."""

    model_config = ConfigDict(extra="forbid")

    customer: str = "customer_id"
    time: str = "timestamp"
    amount: str = "amount"
    category: str | None = "category"  # our names or the bank's own (SEGSTREAM_CATEGORY_MAP) ...
    mcc: str | None = None  # ... or an ISO 18245 merchant category code column
    currency: str | None = "currency"  # a column; None: every row is in default_currency
    default_currency: str = "EUR"
    income: str | None = None  # monthly income, in the row's currency
    event_id: str | None = "event_id"  # None: derived from the file name and the line (stable across re-runs)
    time_format: str | None = None  # strftime codes, e.g. "%d.%m.%Y %H:%M"; None: ISO 8601
    timezone: str = "UTC"  # of times in time_format without %z (ISO times without an offset are UTC)
    delimiter: str = ","
    decimal: str = "."
    thousands: str | None = None
    encoding: str = "utf-8"
    # How a purchase looks: "positive" amounts, "negative" amounts (debits signed -), or
    # "column": the direction column says, debit_values mark purchases.
    debits: Literal["positive", "negative", "column"] = "positive"
    direction: str | None = None
    debit_values: list[str] = ["D", "DEBIT", "S", "SOLL"]

    @model_validator(mode="after")
    def _consistent(self) -> ExportMapping:
        if (self.category is None) == (self.mcc is None):
            raise ValueError("map exactly one of category and mcc")
        if self.debits == "column" and not self.direction:
            raise ValueError("debits: column needs the direction column")
        return self

    @classmethod
    def load(cls, path: Path | None, overrides: dict[str, Any] | None = None) -> ExportMapping:
        data: dict[str, Any] = {}
        if path:
            import yaml

            data = dict(yaml.safe_load(Path(path).read_text()) or {})
        if overrides and overrides.get("mcc") and "category" not in overrides:
            overrides = {**overrides, "category": None}
        if data.get("mcc") and "category" not in data:
            data["category"] = None
        return cls(**{**data, **(overrides or {})})

    def columns(self) -> list[str]:
        return [
            c
            for c in (
                self.customer,
                self.time,
                self.amount,
                self.category,
                self.mcc,
                self.currency,
                self.income,
                self.event_id,
                self.direction,
            )
            if c
        ]


@dataclass(frozen=True)
class ExportRow:
    line: int  # line number in the file (the header is line 1)
    event: dict[str, Any] | None  # None: skipped (a credit) or refused (reason set)
    reason: str | None = None
    detail: str = ""

    @property
    def credit(self) -> bool:
        return self.event is None and self.reason == "credit"


def _number_shape(m: ExportMapping) -> re.Pattern:
    """A number as the mapping says it is written: thousands groups of exactly three digits,
    at most one decimal separator. A mapping with the two separators swapped reads "-44,40" as
    -4,440 without a complaint; the shape refuses it instead (``amount:separators``)."""
    d = re.escape(m.decimal)
    if m.thousands:
        t = re.escape(m.thousands)
        whole = rf"(?:\d{{1,3}}(?:{t}\d{{3}})+|\d+)"
    else:
        whole = r"\d+"
    return re.compile(rf"[+-]?{whole}(?:{d}\d+)?|[+-]?{d}\d+")


def _number(col: pd.Series, m: ExportMapping) -> tuple[pd.Series, pd.Series]:
    """The column's numbers, and where a non-empty value does not have the mapping's shape."""
    s = col.str.strip()
    numeric = s.str.fullmatch(rf"[+-]?[\d{re.escape(m.decimal + (m.thousands or ''))}]+").fillna(False).astype(bool)
    misshapen = numeric & ~s.str.fullmatch(_number_shape(m)).fillna(False).astype(bool)
    if m.thousands:
        s = s.str.replace(m.thousands, "", regex=False)
    if m.decimal != ".":
        s = s.str.replace(m.decimal, ".", regex=False)
    return pd.to_numeric(s, errors="coerce").where(~misshapen), misshapen


def _times(col: pd.Series, m: ExportMapping) -> pd.Series:
    """UTC times. ISO 8601 without an offset, and formats without %z, are local times of
    ``timezone``; the hour an autumn clock change repeats is read as standard time, the
    hour a spring change skips as the hour after."""
    if m.time_format is None:
        return pd.to_datetime(col.str.strip(), format="ISO8601", errors="coerce", utc=True)
    t = pd.to_datetime(col.str.strip(), format=m.time_format, errors="coerce")
    if t.dt.tz is None:
        t = t.dt.tz_localize(m.timezone, ambiguous=np.zeros(len(t), bool), nonexistent="shift_forward")
    return t.dt.tz_convert("UTC")


def _chunk_rows(df: pd.DataFrame, first_line: int, m: ExportMapping, source: str) -> Iterator[ExportRow]:
    lines = np.arange(first_line, first_line + len(df))
    amount, amount_misshapen = _number(df[m.amount], m)
    times = _times(df[m.time], m)
    if m.debits == "negative":
        debit = amount < 0
    elif m.debits == "positive":
        debit = amount > 0
    else:
        marks = {v.upper() for v in m.debit_values}
        debit = df[m.direction].str.strip().str.upper().isin(marks)
    income, income_misshapen = _number(df[m.income], m) if m.income else (None, None)
    iso = times.dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    for i in range(len(df)):
        line = int(lines[i])
        cust = df[m.customer].iat[i]
        if not isinstance(cust, str) or not cust.strip():
            yield ExportRow(line, None, "customer:missing", f"column {m.customer!r} is empty")
            continue
        if pd.isna(times.iat[i]):
            yield ExportRow(
                line, None, "time:unparsable", f"{df[m.time].iat[i]!r} does not match {m.time_format or 'ISO 8601'}"
            )
            continue
        a = amount.iat[i]
        misshapen = amount_misshapen.iat[i] or (income_misshapen is not None and income_misshapen.iat[i])
        if misshapen:
            col = m.amount if amount_misshapen.iat[i] else m.income
            yield ExportRow(
                line,
                None,
                f"{'amount' if col == m.amount else 'income'}:separators",
                f"{df[col].iat[i]!r} is not a number written with decimal {m.decimal!r} and thousands "
                f"{m.thousands!r}: are the two swapped in the mapping?",
            )
            continue
        if pd.isna(a):
            yield ExportRow(
                line,
                None,
                "amount:unparsable",
                f"{df[m.amount].iat[i]!r} (decimal {m.decimal!r}, thousands {m.thousands!r})",
            )
            continue
        if not debit.iat[i]:
            yield ExportRow(line, None, "credit", "not a purchase")
            continue
        ev: dict[str, Any] = {
            "event_id": (df[m.event_id].iat[i] if m.event_id else None) or f"{source}:{line}",
            "customer_id": cust.strip(),
            "timestamp": iso.iat[i],
            "amount": abs(float(a)),
            "currency": (df[m.currency].iat[i] or "").strip().upper() if m.currency else m.default_currency,
        }
        if m.mcc:
            code = df[m.mcc].iat[i]
            ev["mcc"] = code.strip() if isinstance(code, str) else code
        else:
            ev["category"] = (df[m.category].iat[i] or "").strip()
        if income is not None and not pd.isna(income.iat[i]):
            ev["income"] = float(income.iat[i])
        yield ExportRow(line, ev)


def read_export(path: Path, mapping: ExportMapping, chunksize: int = 100_000) -> Iterator[ExportRow]:
    """Every data line of the export, in file order, as an event or a reason."""
    path = Path(path)
    source = f"{path.stem}-{hashlib.sha1(path.name.encode()).hexdigest()[:6]}"
    if path.suffix == ".parquet":
        chunks: Any = [pd.read_parquet(path).astype("string").astype(object).where(lambda d: d.notna(), None)]
    else:
        chunks = pd.read_csv(
            path,
            sep=mapping.delimiter,
            dtype=str,
            keep_default_na=False,
            encoding=mapping.encoding,
            chunksize=chunksize,
            skip_blank_lines=False,
        )
    first = 2
    for df in chunks:
        missing = [c for c in mapping.columns() if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: no column {missing} (the file has {list(df.columns)}); fix the mapping")
        yield from _chunk_rows(df, first, mapping, source)
        first += len(df)


def count_lines(path: Path) -> int:
    """Data lines, for the progress bar (one fast pass over the bytes)."""
    with open(path, "rb") as f:
        return max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1)


@dataclass
class ExportReport:
    """What a pass over an export found: the dry run prints it, the real run too."""

    lines: int = 0
    events: int = 0  # valid purchases (published, or to be)
    credits: int = 0  # skipped: not spending
    other: int = 0  # valid purchases with no personality category (counted by the worker, not scored)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, detail)

    def summary(self, examples: int = 20) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for _, reason, _ in self.rejected:
            reasons[reason] = reasons.get(reason, 0) + 1
        return {
            "lines": self.lines,
            "events": self.events,
            "credits_skipped": self.credits,
            "other_category": self.other,
            "rejected": len(self.rejected),
            "reasons": reasons,
            "first_rejected": [{"line": ln, "reason": r, "detail": d} for ln, r, d in self.rejected[:examples]],
        }


def checked_events(rows: Iterator[ExportRow], limits: Limits, report: ExportReport) -> Iterator[dict[str, Any]]:
    """The rows the worker would accept, each checked by the worker's own rules (``validate_event``
    with the deployment's limits and category map); the rest are recorded in ``report``."""
    for row in rows:
        report.lines += 1
        if row.credit:
            report.credits += 1
            continue
        if row.event is None:
            report.rejected.append((row.line, row.reason or "", row.detail))
            continue
        if _accepted(row.event, row.line, limits, report):
            yield row.event


def checked(events: Iterable[dict[str, Any]], limits: Limits, report: ExportReport) -> Iterator[dict[str, Any]]:
    """Events of any source (numbered from 1) that the worker would accept; the rest recorded in ``report``."""
    for n, event in enumerate(events, 1):
        report.lines += 1
        if _accepted(event, n, limits, report):
            yield event


def _accepted(event: dict[str, Any], line: int, limits: Limits, report: ExportReport) -> bool:
    try:
        tx = validate_event(
            event,
            now=limits.now,
            max_future_s=limits.max_future_s,
            max_amount=limits.max_amount,
            categories=limits.categories,
        )
    except EventRejected as err:
        report.rejected.append((line, err.reason, err.detail))
        return False
    report.events += 1
    report.other += tx.category == OTHER
    return True
