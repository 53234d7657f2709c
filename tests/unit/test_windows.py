from datetime import UTC, datetime

import numpy as np
import pytest

from segstream.core.windows import WindowAggregator, WindowSpec

DAY = 86400.0


def ts(y, m, d=1, hh=0, mm=0, ss=0):
    return datetime(y, m, d, hh, mm, ss, tzinfo=UTC).timestamp()


def test_calendar_month_boundaries():
    spec = WindowSpec(months=1)
    assert spec.index(ts(2024, 1, 31, 23, 59, 59)) + 1 == spec.index(ts(2024, 2, 1))
    i = spec.index(ts(2024, 2, 15))
    assert spec.start(i) == ts(2024, 2, 1)
    assert spec.end(i) == ts(2024, 3, 1)  # leap-year February ends on the 29th
    assert spec.end(spec.index(ts(2024, 12, 5))) == ts(2025, 1, 1)


def test_multi_month_and_fixed_windows():
    q = WindowSpec(months=3)
    assert q.index(ts(2024, 1, 1)) == q.index(ts(2024, 3, 31)) != q.index(ts(2024, 4, 1))
    f = WindowSpec(months=0, seconds=3600)
    assert f.index(7199.0) == 1 and f.end(1) == 7200.0
    with pytest.raises(ValueError):
        WindowSpec(months=1, seconds=60)


def test_window_closes_only_when_watermark_passes_end_plus_lateness():
    agg = WindowAggregator(WindowSpec(months=1), n_categories=3, allowed_lateness_s=2 * DAY)
    agg.add("a", ts(2024, 1, 10), 0, 10.0, income=1000.0)
    agg.add("a", ts(2024, 1, 20), 2, 5.0)
    agg.add("b", ts(2024, 1, 31, 23), 1, 7.0)
    agg.add("a", ts(2024, 2, 2), 1, 1.0)  # watermark = Jan 31: January still open
    assert agg.poll() == []
    agg.add("b", ts(2024, 2, 3), 1, 1.0)  # watermark = Feb 1: January closes
    closed = {w.customer_id: w for w in agg.poll()}
    assert set(closed) == {"a", "b"}
    a = closed["a"]
    assert a.n_events == 2 and a.start == ts(2024, 1, 1) and a.end == ts(2024, 2, 1)
    np.testing.assert_allclose(a.spend, [10.0, 0.0, 5.0])
    np.testing.assert_allclose(a.normalised_spend(), [0.01, 0.0, 0.005])
    # income unknown: normalised by total spend instead
    np.testing.assert_allclose(closed["b"].normalised_spend(), [0.0, 1.0, 0.0])
    assert agg.open_windows == 2  # February for a and b


def test_event_within_lateness_is_kept_and_beyond_is_counted_late():
    agg = WindowAggregator(WindowSpec(months=1), n_categories=1, allowed_lateness_s=2 * DAY)
    agg.add("a", ts(2024, 2, 2), 0, 1.0)
    assert agg.add("a", ts(2024, 1, 30), 0, 1.0) == "ok"  # late but within lateness
    agg.add("a", ts(2024, 2, 4), 0, 1.0)
    jan = agg.poll()
    assert [w.n_events for w in jan] == [1]
    assert agg.add("a", ts(2024, 1, 31), 0, 99.0) == "late"
    assert agg.counts == {"ok": 3, "late": 1, "duplicate": 0}
    feb = agg.flush()
    assert [w.n_events for w in feb] == [2] and feb[0].spend[0] == 2.0


def test_duplicate_event_ids_count_once():
    agg = WindowAggregator(WindowSpec(months=1), n_categories=1)
    assert agg.add("a", ts(2024, 1, 3), 0, 5.0, event_id="e1") == "ok"
    assert agg.add("a", ts(2024, 1, 3), 0, 5.0, event_id="e1") == "duplicate"
    (w,) = agg.flush()
    assert w.spend[0] == 5.0 and w.n_events == 1


# --- batches give what one event at a time gives ------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from segstream.core.columns import TransactionColumns  # noqa: E402
from segstream.core.windows import OUTCOMES  # noqa: E402


class OneByOne:
    """The windowing rules written plainly, one event at a time: the specification."""

    def __init__(self, spec, k, lateness):
        self.spec, self.k, self.lateness = spec, k, lateness
        self.max_t, self.open = float("-inf"), {}

    def add(self, cid, t, cat, amount, income, eid):
        idx = self.spec.index(t)
        if self.spec.end(idx) <= self.max_t - self.lateness:
            return "late"
        self.max_t = max(self.max_t, t)
        w = self.open.setdefault((idx, cid), {"spend": [0.0] * self.k, "n": 0, "income": None, "ids": set()})
        if eid is not None and eid in w["ids"]:
            return "duplicate"
        if eid is not None:
            w["ids"].add(eid)
        w["spend"][cat] += amount
        w["n"] += 1
        if income is not None:
            w["income"] = income
        return "ok"

    def poll(self):
        due = [key for key in self.open if self.spec.end(key[0]) <= self.max_t - self.lateness]
        return sorted(
            (
                cid,
                idx,
                self.open[idx, cid]["n"],
                self.open[idx, cid]["income"],
                tuple(round(x, 6) for x in self.open.pop((idx, cid))["spend"]),
            )
            for idx, cid in due
        )


events = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.floats(ts(2024, 1, 1), ts(2024, 5, 1)),
        st.integers(0, 2),
        st.floats(0.5, 100.0),
        st.none() | st.floats(1000.0, 5000.0),
        st.none() | st.sampled_from(["e1", "e2", "e3", "e4"]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    events=events,
    cuts=st.lists(st.integers(0, 60), max_size=6),
    spec=st.sampled_from([WindowSpec(months=1), WindowSpec(months=2), WindowSpec(months=0, seconds=9 * 86400)]),
    lateness=st.sampled_from([0.0, 2 * DAY, 20 * DAY]),
)
def test_batches_of_any_size_give_what_one_event_at_a_time_gives(events, cuts, spec, lateness):
    agg, want = WindowAggregator(spec, 3, lateness), OneByOne(spec, 3, lateness)
    bounds = sorted({0, len(events), *[c for c in cuts if c < len(events)]})
    for lo, hi in zip(bounds, bounds[1:]):
        chunk = events[lo:hi]
        cols = TransactionColumns.of(chunk)
        got = [OUTCOMES[c] for c in agg.add_columns(cols)]
        assert got == [want.add(*e) for e in chunk]
        closed = sorted((w.customer_id, w.index, w.n_events, w.income, tuple(np.round(w.spend, 6))) for w in agg.poll())
        assert closed == want.poll()


def test_one_event_from_the_future_does_not_close_the_month_for_everybody():
    """With a quorum of 3, the clock follows what three consecutive events say, not one outlier."""
    for quorum, closes in ((1, True), (3, False)):
        agg = WindowAggregator(WindowSpec(months=1), n_categories=3, allowed_lateness_s=DAY, quorum=quorum)
        for d in range(1, 25):
            agg.add(f"c{d}", ts(2024, 3, d), 0, 1.0)
        agg.add("clock-wrong", ts(2024, 4, 6), 0, 1.0)  # six days into next month
        late = [agg.add(f"d{d}", ts(2024, 3, 26, d), 0, 1.0) for d in range(1, 10)]
        assert (agg.poll() != []) is closes
        assert ("late" in late) is closes, quorum
    # the month still closes once the stream itself gets there
    for d in range(3, 6):
        agg.add(f"e{d}", ts(2024, 4, d), 0, 1.0)
    assert [w.customer_id for w in agg.poll()][:1] == ["c1"]


@pytest.mark.parametrize("cut", [1, 2, 5, 17])
def test_quorum_clock_is_the_same_whatever_the_batch_size(cut):
    from segstream.core.columns import TransactionColumns

    rng = np.random.default_rng(cut)
    times = np.sort(rng.uniform(ts(2024, 1, 1), ts(2024, 6, 1), 60))
    times[[10, 30, 31]] += 20 * DAY  # outliers, two of them adjacent
    rows = [(f"c{i % 7}", float(t), 0, 1.0, None, f"e{i}") for i, t in enumerate(times)]
    one = WindowAggregator(WindowSpec(months=1), 3, DAY, quorum=3)
    codes_one = [int(one.add_columns(TransactionColumns.of([r]))[0]) for r in rows]
    batched = WindowAggregator(WindowSpec(months=1), 3, DAY, quorum=3)
    codes = np.concatenate([batched.add_columns(TransactionColumns.of(rows[i : i + cut])) for i in range(0, 60, cut)])
    assert codes.tolist() == codes_one and batched.max_event_time == one.max_event_time


def test_the_wall_clock_closes_what_no_event_will():
    """advance_to moves the clock, never back; a month closes once it is past its end plus the lateness."""
    agg = WindowAggregator(WindowSpec(months=1), n_categories=3, allowed_lateness_s=DAY)
    agg.add("c", ts(2024, 3, 10), 0, 1.0)
    assert agg.next_end() == ts(2024, 4, 1)
    agg.advance_to(ts(2024, 4, 1, 12))  # past the end, not past the lateness
    assert agg.poll() == []
    agg.advance_to(ts(2024, 4, 2))
    assert [w.customer_id for w in agg.poll()] == ["c"] and agg.next_end() == float("inf")
    agg.advance_to(ts(2024, 1, 1))
    assert agg.max_event_time == ts(2024, 4, 2)
    assert agg.add("c", ts(2024, 3, 30), 0, 1.0) == "late"


def test_one_customers_wrong_clock_closes_no_month_however_many_events_it_sends():
    """Issue 29: three events of one customer six days ahead made 98 on-time events of others late,
    as the quorum counted events; it counts customers now."""
    agg = WindowAggregator(WindowSpec(months=1), n_categories=3, allowed_lateness_s=DAY, quorum=3)
    for d in range(1, 25):
        agg.add(f"c{d}", ts(2024, 3, d), 0, 1.0)
    for h in range(5):
        agg.add("clock-wrong", ts(2024, 4, 6, h), 0, 1.0)
    late = [agg.add(f"d{d}", ts(2024, 3, 26, d), 0, 1.0) for d in range(1, 10)]
    assert "late" not in late and agg.poll() == []


def test_a_misdated_customer_inside_a_backfill_makes_nobody_late():
    """Issue 29: four events dated this month from one customer inside a 2023 backfill made every
    later event of the backfill late."""
    agg = WindowAggregator(WindowSpec(months=1), n_categories=3, allowed_lateness_s=3 * DAY, quorum=3)
    out = []
    for m in range(1, 13):
        for c in range(20):
            out.append(agg.add(f"c{c}", ts(2023, m, 1 + c), 0, 1.0))
            if m == 3 and c == 5:
                out += [agg.add("misdated", ts(2026, 12, 1, h), 0, 1.0) for h in range(4)]
    assert "late" not in out


def test_the_clock_s_leaders_come_back_with_a_checkpoint():
    agg = WindowAggregator(WindowSpec(months=1), n_categories=3, allowed_lateness_s=DAY, quorum=3)
    for c in ("a", "b"):
        agg.add(c, ts(2024, 5, 3), 0, 1.0)
    back = WindowAggregator(WindowSpec(months=1), n_categories=3, allowed_lateness_s=DAY, quorum=3)
    back.restore([], agg.max_event_time, agg.leaders)
    for a in (agg, back):
        a.add("c", ts(2024, 5, 3), 0, 1.0)  # the third customer there: the clock moves on both
    assert back.max_event_time == agg.max_event_time == ts(2024, 5, 3)


@settings(max_examples=300, deadline=None)
@given(
    events=events,
    cuts=st.lists(st.integers(0, 60), max_size=6),
    quorum=st.sampled_from([2, 3, 5]),
    lateness=st.sampled_from([0.0, 2 * DAY, 20 * DAY]),
)
def test_the_batch_clock_without_its_event_loop_gives_what_the_loop_gives(events, cuts, quorum, lateness):
    """A batch with nothing late skips the per-event clock (its end is all it needs): the same
    outcomes, clock and closed windows as the loop, whatever the batches and the disorder."""
    fast = WindowAggregator(WindowSpec(months=1), 3, lateness, quorum=quorum)
    loop = WindowAggregator(WindowSpec(months=1), 3, lateness, quorum=quorum)
    loop._clock_if_none_late = lambda *_: None  # always the event-by-event clock
    bounds = sorted({0, len(events), *[c for c in cuts if c < len(events)]})
    for lo, hi in zip(bounds, bounds[1:]):
        cols = TransactionColumns.of(events[lo:hi])
        assert fast.add_columns(cols).tolist() == loop.add_columns(cols).tolist()
        assert fast.max_event_time == loop.max_event_time
        assert sorted(fast.leaders.values()) == sorted(loop.leaders.values())
        key = lambda w: (w.customer_id, w.index, w.n_events, tuple(np.round(w.spend, 6)))  # noqa: E731
        assert sorted(map(key, fast.poll())) == sorted(map(key, loop.poll()))


def test_a_window_merged_from_two_partitions_adds_counts_and_keeps_the_later_income():
    """After the topic gains partitions, `segstream recover` merges a customer's window rows."""
    from segstream.core.windows import merge_window_record

    held = np.array([3.0, 2500.0, 10.0, 0.0])
    moved = np.array([2.0, 1800.0, 5.0, 7.0])
    np.testing.assert_array_equal(merge_window_record(held, moved), [5.0, 2500.0, 15.0, 7.0])
    unknown = np.array([1.0, np.nan, 1.0, 0.0])
    np.testing.assert_array_equal(merge_window_record(unknown, moved), [3.0, 1800.0, 6.0, 7.0])
