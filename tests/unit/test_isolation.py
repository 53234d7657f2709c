"""A window that trips a bug in the engine is set aside, found by bisection; outages are not."""

from collections.abc import Callable

import numpy as np
import pytest

from segstream.core.pipeline import SegmentationPipeline
from segstream.core.windows import ClosedWindow, WindowAggregator, WindowSpec
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
