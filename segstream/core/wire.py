"""Decoding a batch of payloads from the wire, fast for the common case.

Producers publish one canonical form (``producers/``): RFC 3339 times with an
offset, upper-case currency codes, known categories. msgspec parses and checks
that form in one C pass, and the plausibility rules run on arrays for the whole
batch. Anything the fast path refuses goes through :func:`decode_event`, the
reference path, which decides and names the reason. So the fast path only ever
*accepts* events the reference would accept identically (a property test checks
this), and every refusal carries the reference's reason.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

import msgspec
import numpy as np

from .categories import OTHER, CategoryMap
from .columns import TransactionColumns
from .events import (
    CUSTOMER_ID_PATTERN_RE,
    FX_TO_EUR,
    MAX_INCOME_EUR,
    MIN_INCOME_EUR,
    EventRejected,
    Transaction,
    decode_event,
)
from .personality import CATEGORIES

_Currency = Literal[tuple(FX_TO_EUR)]  # type: ignore[valid-type]
_Category = Literal[tuple(CATEGORIES)]  # type: ignore[valid-type]


class _Canonical(msgspec.Struct, gc=False):
    """The canonical wire form, at least as strict as :class:`Transaction` in every field."""

    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    customer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=CUSTOMER_ID_PATTERN_RE)]
    timestamp: Annotated[datetime, msgspec.Meta(tz=True)]
    amount: Annotated[float, msgspec.Meta(gt=0)]
    currency: _Currency
    category: _Category
    income: Annotated[float, msgspec.Meta(gt=0)] | None = None


_decode = msgspec.json.Decoder(_Canonical).decode

# msgspec rounds fractions of a second beyond microseconds, pydantic truncates them:
# such payloads (and, conservatively, any other run of 7+ decimals) take the reference path.
_LONG_FRACTION = re.compile(rb"\.[0-9]{7}")


def _long_fractions(payloads: Sequence[bytes]) -> set[int]:
    """Positions of payloads matching _LONG_FRACTION: one regex scan over the whole batch."""
    buf = b"\n".join(payloads)
    if not _LONG_FRACTION.search(buf):
        return set()
    starts = np.cumsum([0] + [len(p) + 1 for p in payloads[:-1]])
    return {int(np.searchsorted(starts, m.start(), "right")) - 1 for m in _LONG_FRACTION.finditer(buf)}


@dataclass(frozen=True)
class Limits:
    """Plausibility bounds from settings; ``now`` None means the wall clock at decode time."""

    max_bytes: int = 16 * 1024
    max_future_s: float = 7 * 86400
    max_amount: float = 1_000_000.0
    now: float | None = None
    categories: CategoryMap = field(default_factory=CategoryMap)  # merchant codes and the bank's own names


@dataclass
class Decoded:
    valid: TransactionColumns  # in batch order; ``position`` indexes the input payloads
    rejected: list[tuple[int, EventRejected]]  # (position, why), in batch order
    other: int = 0  # valid events whose purchase maps to no personality category: counted, not scored


def _reference(raw: bytes, limits: Limits, now: float) -> Transaction:
    """The reference decision; whatever else goes wrong with one record is that record's reason.

    A payload can make a parser fail in ways no validator foresees (a JSON document
    nested 5,000 deep exhausts the recursion limit): such a record is refused as
    ``internal:<error type>`` instead of stopping the worker on every restart.
    """
    try:
        return decode_event(
            raw,
            max_bytes=limits.max_bytes,
            now=now,
            max_future_s=limits.max_future_s,
            max_amount=limits.max_amount,
            categories=limits.categories,
        )
    except (EventRejected, MemoryError):  # memory is the system's: the worker stops, never dead-letters
        raise
    except Exception as err:  # noqa: BLE001 - any other failure is this record's, never the worker's
        raise EventRejected(f"internal:{type(err).__name__}", str(err)[:200]) from None


def _key_problem(key: bytes | None, customer_id: str) -> EventRejected | None:
    """Records are partitioned by customer: a record keyed otherwise would spread one
    customer's window over partitions, where all but one part would be dropped as stale."""
    if key is None:
        return EventRejected("key:missing", "records must be keyed by customer_id")
    if key != customer_id.encode():
        return EventRejected("key:mismatch", f"key {bytes(key[:80])!r} is not customer_id {customer_id!r}")
    return None


def decode_batch(
    payloads: Sequence[bytes | None], limits: Limits = Limits(), keys: Sequence[bytes | None] | None = None
) -> Decoded:
    """Decode a batch; with ``keys`` (the records' Kafka keys), refuse records not keyed by their customer."""
    now = time.time() if limits.now is None else limits.now
    events: list[_Canonical | Transaction] = []
    positions: list[int] = []
    rejected: list[tuple[int, EventRejected]] = []

    def reference(i: int) -> None:
        try:
            events.append(_reference(payloads[i], limits, now))
            positions.append(i)
        except EventRejected as err:
            rejected.append((i, err))

    slow = _long_fractions([p if isinstance(p, bytes) else b"" for p in payloads])  # positions kept
    for i, raw in enumerate(payloads):
        if not isinstance(raw, bytes) or len(raw) > limits.max_bytes or (slow and i in slow):
            reference(i)
            continue
        try:
            events.append(_decode(raw))
            positions.append(i)
        except Exception:  # noqa: BLE001 - msgspec's errors, invalid UTF-8, recursion: the reference names it
            reference(i)
    if keys is not None:
        keep = []
        for j, (ev, i) in enumerate(zip(events, positions)):
            problem = _key_problem(keys[i], ev.customer_id)
            if problem is None:
                keep.append(j)
            else:
                rejected.append((i, problem))
        if len(keep) < len(events):
            events, positions = [events[j] for j in keep], [positions[j] for j in keep]
    other = [j for j, ev in enumerate(events) if ev.category == OTHER]
    if other:
        keep_rows = sorted(set(range(len(events))) - set(other))
        events, positions = [events[j] for j in keep_rows], [positions[j] for j in keep_rows]
    cols = TransactionColumns.build(events, positions)
    ok = (
        np.isfinite(cols.amount_eur)
        & (cols.amount_eur <= limits.max_amount)
        & (np.isnan(cols.income_eur) | ((cols.income_eur >= MIN_INCOME_EUR) & (cols.income_eur <= MAX_INCOME_EUR)))
        & (cols.timestamp >= 0.0)
        & (cols.timestamp <= now + limits.max_future_s)
    )
    if not ok.all():
        keep = ok.copy()
        for row in np.flatnonzero(~ok).tolist():
            try:  # the reference names the reason; should it accept, its word stands
                _reference(payloads[cols.position[row]], limits, now)
                keep[row] = True
            except EventRejected as err:
                rejected.append((int(cols.position[row]), err))
        cols = cols.take(np.flatnonzero(keep))
    rejected.sort(key=lambda r: r[0])
    return Decoded(cols, rejected, len(other))
