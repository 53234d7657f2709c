"""A window that trips a bug in the engine is set aside, found by bisection; outages and an engine
that fails on every window are not."""

from collections.abc import Callable

import numpy as np
import pytest

from segstream.core.pipeline import SegmentationPipeline
from segstream.core.windows import ClosedWindow, WindowAggregator, WindowSpec
from segstream.errors import EngineFailing, NonFiniteValues
from tests.unit.test_engine import make, window


class Outage(Exception):
    pass


def tripping(engine, bad: Callable[[ClosedWindow], bool], exc=ValueError):
    """Make ``engine.process`` fail whenever a batch holds a ``bad`` window."""
    real = engine.process

    def process(windows):
        if any(map(bad, windows)):
            raise exc("boom")
        return real(windows)

    engine.process = process


def pipeline(engine, isolate=(Outage,)):
    return SegmentationPipeline(
        engine, WindowAggregator(WindowSpec(months=1), 2), batch_size=64, isolate_except=isolate
    )


def test_only_the_failing_windows_are_set_aside_and_the_rest_apply_in_order():
    eng, _, store = make()
    tripping(eng, lambda w: (w.customer_id, w.index) in {("c7", 1), ("c3", 0)})
    pipe = pipeline(eng)
    rng = np.random.default_rng(0)
    ws = [window(f"c{i}", k, rng.uniform(0, 10, 2)) for k in (0, 1, 2) for i in range(20)]
    out = pipe.process(ws)
    assert sorted((w.customer_id, w.index) for w, _ in out.quarantined) == [("c3", 0), ("c7", 1)]
    assert all(isinstance(e, ValueError) for _, e in out.quarantined)
    assert out.applied == len(ws) - 2
    # c7's window 2 came after its quarantined window 1, and still applied
    assert store.state("c7")[4] == 2 and store.state("c3")[4] == 2


def test_an_outage_is_raised_not_bisected():
    eng, _, _ = make()
    tripping(eng, lambda w: w.customer_id == "c1", exc=Outage)
    with pytest.raises(Outage):
        pipeline(eng).process([window(f"c{i}", 0, [1.0, 1.0]) for i in range(4)])


def test_without_isolation_an_engine_error_propagates():
    eng, _, _ = make()
    tripping(eng, lambda w: w.customer_id == "c1")
    with pytest.raises(ValueError):
        pipeline(eng, isolate=None).process([window(f"c{i}", 0, [1.0, 1.0]) for i in range(4)])


def broken(model, exc=RuntimeError):
    """A model whose every step fails, as a broken artefact's would."""

    def step(*_):
        raise exc("no step")

    model.step = step


def test_an_engine_failing_on_every_window_stops_the_batch_and_sets_nothing_aside():
    """Every window of several customers failing is no record's fault: dead-lettering them would skip
    the stream. Nothing is written and EngineFailing says why."""
    eng, model, store = make()
    broken(model)
    with pytest.raises(EngineFailing, match="every window of 4 customers"):
        pipeline(eng).process([window(f"c{i}", 0, [1.0, 1.0]) for i in range(4)])
    assert store.state("c0") is None


def test_a_lone_window_is_blamed_only_if_a_plain_window_goes_through():
    eng, model, _ = make()
    tripping(eng, lambda w: w.customer_id == "c1")
    out = pipeline(eng).process([window("c1", 0, [1.0, 1.0])])  # the engine works: c1's fault
    assert [w.customer_id for w, _ in out.quarantined] == ["c1"]
    broken(model)
    with pytest.raises(EngineFailing, match="plain window too"):
        pipeline(eng).process([window("c2", 0, [1.0, 1.0])])


def test_running_out_of_memory_is_the_systems_failure():
    eng, model, _ = make()
    broken(model, MemoryError)
    with pytest.raises(EngineFailing, match="out of memory"):
        pipeline(eng).process([window("c1", 0, [1.0, 1.0])])


def test_a_records_own_fault_on_every_window_is_still_its_own():
    """A RecordError names the record: every window of a batch may carry one and be set aside."""
    eng, _, _ = make()
    tripping(eng, lambda w: True, exc=NonFiniteValues)
    out = pipeline(eng).process([window(f"c{i}", 0, [1.0, 1.0]) for i in range(3)])
    assert len(out.quarantined) == 3


def test_a_bug_only_stored_states_trip_is_the_systems_even_for_a_lone_window():
    """The probe reads the last applied customer's stored state too: a reader broken for every
    stored record (an upgrade's bug) is not taken for one customer's fault."""
    eng, _, store = make()
    pipe = pipeline(eng)
    pipe.process([window("c0", 0, [1.0, 1.0])])
    real = store.load

    def load(ids):
        state, stats = real(ids)
        if (state.last_window >= 0).any():
            raise ValueError("cannot read a stored record")
        return state, stats

    store.load = load
    with pytest.raises(EngineFailing, match="plain window too"):
        pipe.process([window("c1", 0, [1.0, 1.0]), window("c1", 1, [1.0, 1.0])])
