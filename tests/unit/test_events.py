import numpy as np
import orjson
import pytest

from segstream.core.events import EventRejected, decode_event, validate_event

GOOD = {
    "event_id": "e1",
    "customer_id": "C1",
    "timestamp": "2024-03-01T10:00:00Z",
    "amount": 12.5,
    "currency": "usd",
    "category": "books",
    "income": 3000,
}


def test_valid_event_converts_currency():
    tx = validate_event(GOOD)
    assert tx.currency == "USD" and tx.amount_eur == pytest.approx(12.5 * 0.92)
    assert tx.epoch == pytest.approx(1709287200.0)


@pytest.mark.parametrize(
    "patch, reason",
    [
        ({"amount": -3}, "amount:greater_than"),
        ({"amount": "lots"}, "amount:float_type"),
        ({"amount": "12.5"}, "amount:float_type"),  # strings are refused, not coerced
        ({"amount": True}, "amount:float_type"),  # and booleans are not 1.0
        ({"income": False}, "income:float_type"),
        ({"customer_id": "<img src=x onerror=alert(1)>"}, "customer_id:string_pattern_mismatch"),
        ({"customer_id": "COL\x1fA"}, "customer_id:string_pattern_mismatch"),
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
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe{}", "not_utf8"),
        (b"[1,2]", "not_an_object"),
        (b'{"a":"' + b"x" * 20000 + b'"}', "oversized"),
    ],
)
def test_wire_errors(raw, reason):
    with pytest.raises(EventRejected) as e:
        decode_event(raw)
    assert e.value.reason == reason


def test_decode_roundtrip():
    assert decode_event(orjson.dumps(GOOD)).customer_id == "C1"


def test_tracking_scores_match_announcements_to_true_changes():
    from segstream.quality import score_tracking

    truth = np.array([["A"] * 6, ["A", "A", "B", "B", "B", "B"], ["A"] * 6], dtype=object)
    labels = np.array([["A"] * 6, ["A", "A", "A", "B", "B", "B"], ["A", "A", "C", "C", "A", "A"]], dtype=object)
    announced = [(1, 3, True), (2, 2, False), (2, 4, True)]
    s = score_tracking(labels, truth, announced, match_windows=2)
    assert s["change_precision_lenient"] == 1 / 3 and s["change_recall_3_lenient"] == 1.0
    assert s["median_delay_lenient"] == 1.0
    assert s["false_changes_per_stable_window"] == 2 / 12
    assert s["label_accuracy_stable_end"] == 1.0 and s["label_accuracy_changed_end"] == 1.0


def test_label_exact_figures_count_what_a_consumer_acts_on_and_differ_from_the_lenient_ones():
    """Issue 31: recall within k needs the first announcement in windows m..m+k-1 to carry the true
    new segment; precision needs the right label after a true change within the last 6 windows."""
    from segstream.quality import announced_breakdown, score_tracking

    t = 10
    truth = np.array(
        [
            ["A"] * 3 + ["B"] * 7,  # changes at window 3
            ["A"] * 3 + ["B"] * 7,  # changes at window 3
            ["A"] * 2 + ["C"] * 8,  # changes at window 2
            ["A"] * t,  # stable
        ],
        dtype=object,
    )
    labels = np.full(truth.shape, "A", dtype=object)
    announced = [
        (0, 4, True),  # right label, second window of the change: delay 2
        (1, 3, False),  # wrong label first (announced "D"), then corrected ...
        (1, 4, True),  # ... which the exact recall does not count: the first one was wrong
        (2, 8, True),  # right, but 7 windows after the change: too late for either recall
        (3, 5, False),  # a stable customer announced as changed
    ]
    s = score_tracking(labels, truth, announced)
    assert s["recall_3"] == 1 / 3 and s["recall_6"] == 1 / 3
    assert s["change_recall_3_lenient"] == 2 / 3  # any announcement within delay 0..3, whatever its label
    assert s["precision"] == 2 / 5  # (0, 4) and (1, 4): right labels within 6 windows of a change
    # first announcements within delay 0..6 of a change, whatever their label: (0, 4), (1, 3), (2, 8)
    assert s["change_precision_lenient"] == 3 / 5
    assert s["median_delay"] == 2.0  # customer 0, the change window counting as 1
    assert s["false_changes_per_stable_window"] == 1 / t
    # customer 2's first label came at window 2, the window its change began: it can only have been
    # received as that first label, so the breakdown counts it apart
    labels[2, :2] = ""
    s = score_tracking(labels, truth, announced)
    assert s["recall_3"] == 1 / 3 and s["changes_before_first_label"] == 1 / 3
    assert s["recall_3_after_first_label"] == 1 / 2 and s["recall_6_after_first_label"] == 1 / 2
    # where the imprecise announcements went: one wrong label, one too late, one to a stable customer
    b = announced_breakdown(truth, announced + [(0, 1, False)])  # and one before customer 0's change
    assert b == {"right": 2 / 6, "wrong_label": 1 / 6, "late": 1 / 6, "before_change": 1 / 6, "stable_customer": 1 / 6}
    assert b["right"] == score_tracking(labels, truth, announced + [(0, 1, False)])["precision"]
