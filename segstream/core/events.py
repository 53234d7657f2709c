"""Typed events at the edges of the core and the rules that make an event valid.

Validation returns a machine-readable *reason* instead of raising into the
stream loop: an invalid event is routed to the dead-letter topic, never dropped
and never allowed to stop a worker.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictFloat, ValidationError, field_validator

from .categories import OTHER, CategoryMap, CategoryRefused
from .personality import CATEGORY_INDEX

# Customer ids are keys in Redis, Kafka and URLs, and text in a banker's browser:
# letters, digits and . _ : @ - only. Anything else (markup, control characters,
# separators) is refused at ingest with ``customer_id:string_pattern_mismatch``.
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,64}$"
# The same rule for Python's re, whose ``$`` also matches before a final newline ("NL1\n"):
# msgspec checks patterns with re.search, pydantic with Rust's regex, where ``$`` is the end.
CUSTOMER_ID_PATTERN_RE = r"\A[A-Za-z0-9._:@-]{1,64}\Z"
# A monthly income divides the window's spend: one that rounds to nothing (1e-40) would make
# the model's input overflow float32 and poison the shared centroids with NaN. Plausible
# bounds, in EUR a month, outside which the income (never the purchase) is refused.
MIN_INCOME_EUR = 1.0
MAX_INCOME_EUR = 100_000_000.0
# Amounts are JSON numbers (integers too): booleans and numeric strings are refused
# (``amount:float_type``), not coerced; a producer that sends "12.5" has a bug to fix.
Number = StrictFloat

# Reference rates to EUR. Illustrative and static: a deployment replaces them with
# its treasury's daily rates. What matters to the core is one base currency.
FX_TO_EUR: dict[str, float] = {
    "EUR": 1.0,
    "USD": 0.92,
    "GBP": 1.17,
    "CHF": 1.05,
    "NOK": 0.086,
    "SEK": 0.088,
    "DKK": 0.134,
    "CZK": 0.040,
    "PLN": 0.23,
}


class Transaction(BaseModel):
    """One card or account transaction, as producers publish it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(min_length=1, max_length=128)
    customer_id: str = Field(min_length=1, max_length=64, pattern=CUSTOMER_ID_PATTERN)
    timestamp: datetime
    amount: Number = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)
    category: str
    income: Number | None = Field(default=None, gt=0)  # monthly income in ``currency``

    @field_validator("timestamp")
    @classmethod
    def _aware_utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return v

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, v: str) -> str:
        v = v.upper()
        if v not in FX_TO_EUR:
            raise ValueError("unknown_currency")
        return v

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str) -> str:
        if v not in CATEGORY_INDEX and v != OTHER:
            raise ValueError("unknown_category")
        return v

    _epoch: float = PrivateAttr(default=0.0)

    def model_post_init(self, __context: Any) -> None:
        # computed once: every stage reads it, and cached_property takes a lock on 3.11
        self._epoch = self.timestamp.timestamp()

    @property
    def epoch(self) -> float:
        return self._epoch

    @property
    def amount_eur(self) -> float:
        return self.amount * FX_TO_EUR[self.currency]


class SegmentChange(BaseModel):
    """Emitted when a customer's micro-segment differs from the one stored for them."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    old_segment: int | None
    new_segment: int
    old_segment_label: str | None
    segment_label: str  # trait ordering of the new segment's centroid, e.g. "O>E"
    recommendation: str  # product family for the new segment (see core/profiles.py)
    # the window is [window_start, window_end): a monthly window is named by its first day,
    # as the API and the explorer name it; window_end (exclusive) is when it could close
    window_end: datetime
    window_start: datetime | None = None  # absent on events from segstream before 0.5
    distance: float  # Euclidean distance of the hidden state to the new centroid
    # the probability that segment_label is the customer's true micro-segment (calibrated on
    # generated banks: docs/tracking.md); filter on it, or set SEGSTREAM_MIN_CONFIDENCE
    confidence: float
    margin: float | None = None  # the state's margin to the runner-up centroid, in [0, 1] (before 0.8: confidence)
    model_version: str
    centroid_version: int
    traits: dict[str, float]  # the customer's predicted Big-Five profile
    # Why (absent on an announcement rebuilt after a crash):
    trait_shift: dict[str, float] | None = None  # predicted traits after this window minus before it
    drivers: list[dict[str, Any]] | None = None  # the window's categories pulling along that shift, with their share
    # reason (first_assignment | detected_change | correction | confirmed_drift): a correction
    #   replaces a provisional segment (a first or post-change one) that more windows contradict
    evidence: dict[str, Any] | None = None
    #   change statistic, windows confirmed, relative margin to the previous segment's centroid


class InvalidEvent(BaseModel):
    """What goes to the dead-letter topic: the raw payload and why it was refused."""

    reason: str
    detail: str
    raw: str  # payload as text (invalid UTF-8 replaced), truncated
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None


class EventRejected(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


_MIN_EPOCH = 0.0


def _reason_from(err: ValidationError) -> tuple[str, str]:
    first = err.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"]) or "event"
    msg = str(first.get("msg", ""))
    code = first["type"]
    if code == "value_error":  # our own validators put the reason in the message
        code = msg.removeprefix("Value error, ")
    return f"{field}:{code}", msg


def _checked(tx: Transaction, now: float | None, max_future_s: float, max_amount: float) -> Transaction:
    """Rules a schema cannot say: plausible amounts and times."""
    if not math.isfinite(tx.amount) or tx.amount_eur > max_amount:
        raise EventRejected("amount:out_of_range", f"{tx.amount} {tx.currency}")
    if tx.income is not None and not (MIN_INCOME_EUR <= tx.income * FX_TO_EUR[tx.currency] <= MAX_INCOME_EUR):
        raise EventRejected("income:out_of_range", f"{tx.income} {tx.currency}")
    ts = tx.epoch
    if ts < _MIN_EPOCH:
        raise EventRejected("timestamp:before_epoch", tx.timestamp.isoformat())
    if ts > (time.time() if now is None else now) + max_future_s:
        raise EventRejected("timestamp:in_future", tx.timestamp.isoformat())
    return tx


def validate_event(
    data: dict[str, Any],
    *,
    now: float | None = None,
    max_future_s: float = 7 * 86400,
    max_amount: float = 1_000_000.0,
    categories: CategoryMap = CategoryMap(),
) -> Transaction:
    """Build a :class:`Transaction` or raise :class:`EventRejected` with a reason code.

    An event naming its purchase by merchant category code or by the bank's own name
    gets our category (or ``other``) from ``categories`` first."""
    if not isinstance(data, dict):
        raise EventRejected("not_an_object", type(data).__name__)
    cat = data.get("category")
    # a merchant code, or a name not ours; anything else (missing fields, other types) the schema names
    if (cat is None and data.get("mcc") is not None) or (isinstance(cat, str) and cat not in CATEGORY_INDEX):
        try:
            data = {**data, "category": categories.resolve(data)}
        except CategoryRefused as err:
            raise EventRejected(err.reason, err.detail) from None
    try:
        tx = Transaction.model_validate(data)
    except ValidationError as err:
        raise EventRejected(*_reason_from(err)) from None
    return _checked(tx, now, max_future_s, max_amount)


def decode_event(
    raw: bytes,
    *,
    max_bytes: int = 16 * 1024,
    now: float | None = None,
    max_future_s: float = 7 * 86400,
    max_amount: float = 1_000_000.0,
    categories: CategoryMap = CategoryMap(),
) -> Transaction:
    """Bytes from the wire to a valid transaction, or :class:`EventRejected`.

    The reference path: streams decode whole batches with ``wire.decode_batch``, which
    sends here every event not in the canonical form, so reasons come from one place.
    """
    if raw is None:
        raise EventRejected("tombstone", "a record without a value")
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise EventRejected("not_bytes", type(raw).__name__)
    if len(raw) > max_bytes:
        raise EventRejected("oversized", f"{len(raw)} bytes > {max_bytes}")
    try:
        data = orjson.loads(raw)  # orjson rejects invalid UTF-8 itself
    except orjson.JSONDecodeError as err:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EventRejected("not_utf8", str(err)) from None
        raise EventRejected("malformed_json", str(err)) from None
    return validate_event(data, now=now, max_future_s=max_future_s, max_amount=max_amount, categories=categories)


def dead_letter(raw: bytes, err: EventRejected, **source: Any) -> InvalidEvent:
    return InvalidEvent(
        reason=err.reason,
        detail=err.detail[:500],
        raw="" if raw is None else bytes(raw[:2048]).decode("utf-8", errors="replace"),
        **source,
    )
