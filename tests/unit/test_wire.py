"""The fast decode path accepts exactly what the reference accepts, with the same values and reasons."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.core.columns import TransactionColumns
from segstream.core.events import EventRejected, decode_event
from segstream.core.personality import CATEGORIES
from segstream.core.wire import Limits, decode_batch
from tests.unit.samples import GOOD

NOW = 1.8e9
LIMITS = Limits(now=NOW)

timestamps = st.sampled_from(
    [
        "2024-03-01T10:00:00Z",
        "2024-03-01T10:00:00+02:00",
        "2024-03-01T10:00:00.5Z",
        "2024-03-01T10:00:00.123456789Z",
        "2024-03-01T23:59:59.9999999+01:00",
        "2024-03-01T10:00:00,5Z",
        "2024-03-01T10:00:00+05:30",
        "2024-03-01T10:00Z",
        "2024-03-01T10:00:00+25:00",
        "2024-03-01T10:00:00",
        "2024-03-01 10:00:00Z",
        "2024-03-01t10:00:00z",
        "2024-03-01",
        "2024-02-30T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2027-01-01T00:00:00Z",
        "2024-03-01T24:00:00Z",
        "2024-03-01T10:00:60Z",
        "",
        1709287200,
    ]
) | st.datetimes(timezones=st.just(__import__("datetime").timezone.utc)).map(lambda d: d.isoformat())
amounts = st.sampled_from([12.5, 0, -1, 1, "12.5", True, None, 1e6, 1.2e6, 999999.99, 1e400]) | st.floats(
    allow_nan=False
)
texts = st.text(max_size=5) | st.sampled_from(["C1", "", "x" * 64, "x" * 65, "x" * 129, "é\u2028"])
fields = st.fixed_dictionaries(
    {},
    optional={
        "event_id": texts,
        "customer_id": texts,
        "timestamp": timestamps,
        "amount": amounts,
        "currency": st.sampled_from(["EUR", "eur", "USD", "XXX", "", 1]),
        "category": st.sampled_from([*CATEGORIES[:3], "Books", "", None]),
        "income": st.none() | amounts,
        "extra": st.integers(),
    },
)


def encode(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).replace("Infinity", "1e400").encode()


one_off = st.sampled_from(sorted(GOOD)).flatmap(
    lambda k: fields.filter(lambda d: k in d).map(lambda d: encode({**GOOD, k: d[k]}))
)

payloads = st.one_of(
    one_off,
    st.builds(lambda d: encode({**GOOD, **d}), fields),  # a few fields off
    st.builds(encode, fields),  # anything goes
    st.binary(max_size=80),
    st.sampled_from(
        [
            b"",
            b"[]",
            b"null",
            b'{"event_id":"a","event_id":"b"}',
            encode(GOOD) + b" x",
            encode(GOOD).replace(b'"C1"', b'"\\ud800"'),
            b"\xff" + encode(GOOD),
            encode(GOOD) * 2,
        ]
    ),
)


def reference(raw: bytes):
    try:
        return decode_event(raw, now=NOW)
    except EventRejected as err:
        return err


def assert_same_columns(a: TransactionColumns, b: TransactionColumns) -> None:
    assert a.customer_id == b.customer_id
    for name in ("timestamp", "category", "amount_eur", "income_eur", "key", "position"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@settings(max_examples=600, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=8))
def test_a_batch_decodes_as_the_reference_decodes_each_event(batch):
    got = decode_batch(batch, LIMITS)
    want = [reference(raw) for raw in batch]
    assert [(i, e.reason) for i, e in got.rejected] == [
        (i, w.reason) for i, w in enumerate(want) if isinstance(w, EventRejected)
    ]
    accepted = [(i, w) for i, w in enumerate(want) if not isinstance(w, EventRejected)]
    assert_same_columns(got.valid, TransactionColumns.build([w for _, w in accepted], [i for i, _ in accepted]))


def test_the_canonical_form_takes_the_fast_path(monkeypatch):
    import segstream.core.wire as wire

    def refuse(*a, **k):
        raise AssertionError("reference path used")

    monkeypatch.setattr(wire, "decode_event", refuse)
    got = decode_batch([encode(GOOD), encode({**GOOD, "event_id": "e2", "currency": "USD"})], LIMITS)
    assert len(got.valid) == 2 and not got.rejected
    assert got.valid.amount_eur.tolist() == [12.5, 12.5 * 0.92]


TIMES = [
    "2024-03-01T10:00:00Z",
    "2024-03-01t10:00:00z",
    "2024-03-01T10:00:00+05:30",
    "2024-03-01T10:00:00-00:00",
    "2024-03-01T10:00Z",
    "2024-03-01T10:00:00,5Z",
    "2024-03-01T10:00:00+0530",
    "2024-03-01T10:00:00+05",
    "2024-03-01T10:00:00.1234567+01:00",
    "2024-03-01T23:59:59.9999999Z",
    "2024-03-01T10:00:00.000000000000001Z",
    "0000-01-01T00:00:00Z",
    "2024-3-1T10:00:00Z",
    "2024-03-01T10:00:00 Z",
    "2024-03-01T10:00:00+25:00",
]


def test_timestamp_spellings_decode_as_the_reference_decodes_them():
    batch = [encode({**GOOD, "event_id": f"e{i}", "timestamp": t}) for i, t in enumerate(TIMES)]
    got = decode_batch(batch, LIMITS)
    want = [reference(raw) for raw in batch]
    assert [i for i, _ in got.rejected] == [i for i, w in enumerate(want) if isinstance(w, EventRejected)]
    assert got.valid.timestamp.tolist() == [w.epoch for w in want if not isinstance(w, EventRejected)]
