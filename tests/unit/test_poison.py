"""No record may stop the worker: whatever one record does wrong becomes its own dead letter.

These drive the worker's own decode path (``ingest_payloads``, what the stream
processor calls for every partition batch) with records no producer should send.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segstream.core import wire
from segstream.core.columns import event_keys
from segstream.core.pipeline import ingest_payloads
from segstream.core.windows import WindowAggregator, WindowSpec
from segstream.core.wire import Limits
from tests.unit.samples import GOOD

LIMITS = Limits(now=1.8e9)


def ingest(values, keys):
    return ingest_payloads(WindowAggregator(WindowSpec(), 30, 86400), values, LIMITS, keys)


def reasons(ing):
    return {i: err.reason for i, err in ing.rejected}


def test_tombstone_deep_nesting_and_other_types_are_dead_letters_with_reasons():
    deep = b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b", " + orjson.dumps(GOOD)[1:]
    good = orjson.dumps(GOOD)
    ing = ingest([None, deep, good, bytearray(good), 42], [b"C1"] * 5)
    r = reasons(ing)
    assert r[0] == "tombstone"
    assert r[1] in ("malformed_json", "internal:RecursionError")  # refused, whichever parser gives up first
    assert r[4] == "not_bytes"
    assert ing.valid.position.tolist() == [2, 3]  # a bytearray is bytes enough


def test_records_must_be_keyed_by_their_customer():
    good = orjson.dumps(GOOD)
    ing = ingest([good, good, good], [b"C1", None, b"C2"])
    assert reasons(ing) == {1: "key:missing", 2: "key:mismatch"}
    assert len(ing.valid) == 1


def test_dedup_keys_cannot_collide_across_customer_and_event_ids():
    a, b = event_keys(["COL", "COL\x1fA"], ["A\x1fx", "x"])
    assert a != b


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.binary(max_size=40), st.just(b"C1")),
            st.one_of(
                st.none(),
                st.binary(max_size=200),
                st.just(orjson.dumps(GOOD)),
                st.dictionaries(
                    st.text(max_size=8),
                    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
                    max_size=4,
                ).map(orjson.dumps),
            ),
            st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=8)), max_size=3),
        ),
        max_size=30,
    )
)
def test_any_key_value_and_headers_is_accepted_or_dead_lettered_never_raised(records):
    keys = [k for k, _, _ in records]
    values = [v for _, v, _ in records]
    # headers ride along in the records; the decode path must not depend on them
    ing = ingest(values, keys)
    positions = set(ing.valid.position.tolist()) | {i for i, _ in ing.rejected}
    assert positions == set(range(len(records)))  # every record accounted for, exactly once
    assert not set(ing.valid.position.tolist()) & {i for i, _ in ing.rejected}
    for i in ing.valid.position.tolist():
        assert keys[i] == b"C1" and values[i] == orjson.dumps(GOOD)


def test_running_out_of_memory_while_decoding_is_no_records_fault(monkeypatch):
    """A parser's MemoryError is the system's (the worker stops and re-reads), unlike its RecursionError."""

    def exhausted(*_, **__):
        raise MemoryError

    monkeypatch.setattr(wire, "decode_event", exhausted)
    with pytest.raises(MemoryError):
        ingest([b"{not json"], [b"C1"])
