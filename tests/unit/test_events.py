import orjson
import pytest

from segstream.core.events import EventRejected, decode_event, validate_event

GOOD = {
    "event_id": "e1", "customer_id": "C1", "timestamp": "2024-03-01T10:00:00Z",
    "amount": 12.5, "currency": "usd", "category": "books", "income": 3000,
}


def test_valid_event_converts_currency():
    tx = validate_event(GOOD)
    assert tx.currency == "USD" and tx.amount_eur == pytest.approx(12.5 * 0.92)
    assert tx.epoch == pytest.approx(1709287200.0)


@pytest.mark.parametrize(
    "patch, reason",
    [
        ({"amount": -3}, "amount:greater_than"),
        ({"amount": "lots"}, "amount:float_parsing"),
        ({"amount": 5e8}, "amount:out_of_range"),
        ({"category": "yachts"}, "category:unknown_category"),
        ({"currency": "XXX"}, "currency:unknown_currency"),
        ({"timestamp": "1960-01-01T00:00:00Z"}, "timestamp:before_epoch"),
        ({"timestamp": "2999-01-01T00:00:00Z"}, "timestamp:in_future"),
        ({"timestamp": "yesterday"}, "timestamp:datetime_from_date_parsing"),
        ({"customer_id": ""}, "customer_id:string_too_short"),
        ({"income": 0}, "income:greater_than"),
    ],
)
def test_invalid_fields_have_reasons(patch, reason):
    with pytest.raises(EventRejected) as e:
        validate_event({**GOOD, **patch})
    assert e.value.reason == reason


def test_missing_field_reason():
    with pytest.raises(EventRejected) as e:
        validate_event({k: v for k, v in GOOD.items() if k != "customer_id"})
    assert e.value.reason == "customer_id:missing"


@pytest.mark.parametrize(
    "raw, reason",
    [(b"{not json", "malformed_json"), (b"\xff\xfe{}", "not_utf8"), (b"[1,2]", "not_an_object"),
     (b'{"a":"' + b"x" * 20000 + b'"}', "oversized")],
)
def test_wire_errors(raw, reason):
    with pytest.raises(EventRejected) as e:
        decode_event(raw)
    assert e.value.reason == reason


def test_decode_roundtrip():
    assert decode_event(orjson.dumps(GOOD)).customer_id == "C1"
