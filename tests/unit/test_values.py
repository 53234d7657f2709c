"""Issue 28, items 4 and 7: numbers stay finite, and the two decoders agree.

The batch decoder (msgspec's fast path, then arrays) must never accept what the reference
path (pydantic, per event) refuses, nor read a value differently; extreme numbers either
are refused with a reason or go through the engine to finite states and centroids.
"""

from __future__ import annotations

import math
import uuid
from functools import cache

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.core.events import EventRejected, decode_event
from segstream.core.wire import Limits, decode_batch
from tests.unit.samples import GOOD

NOW = 2e9
EXTREME = [
    5e-324,  # the smallest subnormal
    2.2250738585072014e-308,
    1e-300,
    1e-40,  # overflowed float32 as a divisor in 0.7
    1e-7,
    -0.0,
    0.0,
    0.5,
    1.0,
    3000.0,
    1e6,
    1e15,
    1e38,
    3.5e38,  # beyond float32
    1e308,
    1.7976931348623157e308,
]
IDS = st.text(alphabet="AZaz09._:@-\n\r \t\x00é/", min_size=0, max_size=70)
TIMES = st.sampled_from(
    [
        "2024-03-01T10:00:00Z",
        "2024-03-01T10:00:00+02:00",
        "2024-03-01T10:00:00",
        "2024-03-01 10:00:00Z",
        "2024-03-01T10:00:00.1234567Z",
        "1969-12-31T23:59:59Z",
        "2999-01-01T00:00:00Z",
        "2024-02-30T10:00:00Z",
        "2024-03-01T10:00:00Z\n",
    ]
)


@cache
def shared_pipeline():
    from segstream.assembly import build_pipeline
    from segstream.config import Settings

    return build_pipeline(Settings(warmup_windows=1), isolate_except=())


def reference(raw: bytes):
    try:
        return decode_event(raw, now=NOW)
    except EventRejected as err:
        return err.reason


def batch(raw: bytes):
    d = decode_batch([raw], Limits(now=NOW), keys=None)
    if d.rejected:
        return d.rejected[0][1].reason
    return d.valid


@settings(max_examples=600, deadline=None)
@given(
    customer=IDS,
    amount=st.sampled_from(EXTREME) | st.floats(allow_nan=False, allow_infinity=False),
    income=st.none() | st.sampled_from(EXTREME) | st.floats(allow_nan=False, allow_infinity=False),
    ts=TIMES,
)
def test_the_batch_decoder_accepts_exactly_what_the_reference_accepts(customer, amount, income, ts):
    event = {**GOOD, "customer_id": customer, "amount": amount, "income": income, "timestamp": ts}
    raw = orjson.dumps(event)
    want, got = reference(raw), batch(raw)
    if isinstance(want, str):
        assert isinstance(got, str), f"the batch path accepted what the reference refuses ({want}): {event}"
        return
    assert not isinstance(got, str), f"refused as {got}, accepted by the reference: {event}"
    assert got.customer_id == [want.customer_id]
    assert got.amount_eur[0] == want.amount_eur
    assert (math.isnan(got.income_eur[0]) and want.income is None) or got.income_eur[0] == want.income
    assert got.timestamp[0] == want.epoch


def test_a_customer_id_with_a_trailing_newline_is_refused_on_both_paths():
    raw = orjson.dumps({**GOOD, "customer_id": "NL1\n"})
    assert reference(raw) == batch(raw) == "customer_id:string_pattern_mismatch"


def test_an_income_that_rounds_to_nothing_is_refused_as_the_incomes_fault():
    raw = orjson.dumps({**GOOD, "income": 1e-40})
    assert reference(raw) == batch(raw) == "income:out_of_range"


@settings(max_examples=60, deadline=None)
@given(amounts=st.lists(st.sampled_from(EXTREME), min_size=1, max_size=8), income=st.sampled_from(EXTREME))
def test_extreme_values_through_the_engine_leave_every_state_and_centroid_finite(amounts, income):
    from segstream.errors import NonFiniteValues

    pipeline, cid = shared_pipeline(), uuid.uuid4().hex[:12]
    events = [
        {
            **GOOD,
            "customer_id": cid,
            "event_id": f"e{i}",
            "timestamp": f"2024-0{1 + i % 3}-05T10:00:00Z",
            "amount": a,
            "income": income,
        }
        for i, a in enumerate(amounts)
    ]
    pipeline.ingest_payloads([orjson.dumps(e) for e in events], Limits(now=NOW))
    pipeline.windows.advance_to(NOW)  # close what is open, as a later month's events would
    result = pipeline.drain()  # the worker's isolation: a window at fault is set aside, with its reason
    assert all(isinstance(err, NonFiniteValues) for _, err in result.quarantined)
    states, stats = pipeline.engine.store.load([cid])
    assert np.isfinite(stats.sums).all() and np.isfinite(states.h).all() and np.isfinite(states.c).all()


def test_a_window_whose_features_are_not_finite_is_set_aside_and_the_centroids_never_see_it():
    from segstream.core.personality import CATEGORIES
    from segstream.core.windows import ClosedWindow
    from segstream.errors import NonFiniteValues

    pipeline = shared_pipeline()
    _, before = pipeline.engine.store.load([])
    spend = np.zeros(len(CATEGORIES))
    spend[3] = np.inf  # a sum of amounts that overflowed
    bad = ClosedWindow("bad-one", 700, 0.0, 1.0, spend, 2, 1.0)
    good = ClosedWindow("good-one", 700, 0.0, 1.0, np.full(len(CATEGORIES), 10.0), 2, 3000.0)
    result = pipeline.process([bad, good])
    assert [(w.customer_id, type(e)) for w, e in result.quarantined] == [("bad-one", NonFiniteValues)]
    assert result.applied == 1
    states, after = pipeline.engine.store.load(["bad-one"])
    assert states.last_window[0] < 700 and np.isfinite(after.sums).all()
    assert after.version >= before.version
