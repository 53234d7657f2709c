"""Writing one chunk while the next is prepared gives what one chunk after another gives."""

import threading
import time

import numpy as np

from segstream.core.pipeline import SegmentationPipeline
from segstream.core.windows import WindowAggregator, WindowSpec
from tests.unit.test_engine import make, window


class SlowWrites:
    """The in-memory store behind a lock, its commits slow: a store of its own process."""

    def __init__(self, store, log):
        self.store, self.log, self.lock = store, log, threading.Lock()

    def __getattr__(self, name):
        return getattr(self.store, name)

    def load(self, ids):
        self.log.append(("load", ids[0]))
        with self.lock:
            return self.store.load(ids)

    def commit(self, ids, states):
        self.log.append(("commit start", ids[0]))
        time.sleep(0.05)
        with self.lock:
            out = self.store.commit(ids, states)
        self.log.append(("commit end", ids[0]))
        return out


def run(windows, overlap):
    eng, _, store = make()
    log = []
    eng.store = SlowWrites(store, log)
    pipe = SegmentationPipeline(eng, WindowAggregator(WindowSpec(months=1), 2), batch_size=10, overlap=overlap)
    out = pipe.process(windows)
    return out, store, log


def summary(out, store, ids):
    changes = sorted((c.customer_id, c.new_segment, c.window_end) for c in out.changes)
    return changes, out.applied, [store.state(c)[2:6] for c in ids]


def test_overlapped_chunks_give_the_sequential_result_and_do_overlap():
    rng = np.random.default_rng(0)
    ids = [f"c{i:02d}" for i in range(40)]
    ws = [window(c, 0, rng.uniform(0, 10, 2)) for c in ids]
    seq, seq_store, _ = run(ws, overlap=False)
    par, par_store, log = run(ws, overlap=True)
    assert summary(par, par_store, ids) == summary(seq, seq_store, ids)
    # the second chunk was loaded while the first was being written
    assert log.index(("load", "c10")) < log.index(("commit end", "c00"))


def test_a_chunk_that_shares_a_customer_waits_for_the_write_before_it():
    rng = np.random.default_rng(1)
    ids = [f"c{i:02d}" for i in range(10)]
    # chunk 1: window 0 of c00..c09; chunk 2: their window 1 - it must read what chunk 1 wrote
    ws = [window(c, 0, rng.uniform(0, 10, 2)) for c in ids] + [window(c, 1, rng.uniform(0, 10, 2)) for c in ids]
    seq, seq_store, _ = run(ws, overlap=False)
    par, par_store, log = run(ws, overlap=True)
    assert summary(par, par_store, ids) == summary(seq, seq_store, ids)
    assert all(par_store.state(c)[4] == 1 and par_store.state(c)[5] == 2 for c in ids)
    assert [e for e in log if e[1] == "c00"] == [
        ("load", "c00"),
        ("commit start", "c00"),
        ("commit end", "c00"),
        ("load", "c00"),
        ("commit start", "c00"),
        ("commit end", "c00"),
    ]
