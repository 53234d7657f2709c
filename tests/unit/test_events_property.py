"""Hostile input never escapes as anything but a reasoned rejection."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.core.events import EventRejected, Transaction, decode_event, validate_event
from segstream.core.personality import CATEGORIES
from tests.unit.samples import GOOD

REASON = re.compile(r"^[a-z0-9_.]+(:[a-z0-9_]+)?$")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=10,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_rejected_with_a_reason(raw):
    try:
        tx = decode_event(raw)
    except EventRejected as err:
        assert REASON.match(err.reason), err.reason
    else:
        assert isinstance(tx, Transaction)


@settings(max_examples=400, deadline=None)
@given(
    field=st.sampled_from(sorted(GOOD)), value=json_values | st.sampled_from(["", "-1", "1e400", "NaN", CATEGORIES[3]])
)
def test_near_valid_events_are_valid_or_rejected_with_a_reason(field, value):
    event = {**GOOD, field: value}
    try:
        tx = validate_event(event, now=2e9)
    except EventRejected as err:
        assert REASON.match(err.reason), err.reason
        assert err.reason.split(":")[0] in (*GOOD, "event", "not_an_object", "amount", "income", "timestamp")
    else:
        assert tx.amount > 0 and tx.category in CATEGORIES and 0 <= tx.epoch <= 2e9 + 7 * 86400


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(GOOD)), json_values, max_size=7))
def test_random_objects_on_the_wire(obj):
    try:
        decode_event(json.dumps(obj).encode())  # stdlib: may write integers orjson would refuse
    except EventRejected as err:
        assert REASON.match(err.reason), err.reason
