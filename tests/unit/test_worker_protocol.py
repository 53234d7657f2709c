"""The worker's protocol with fakes for the core and the broker: the order of its steps."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from segstream.config import Settings
from segstream.state.fencing import Fenced
from segstream.stream_app.batch import BatchOutput, PartitionBatch
from segstream.stream_app.checkpoint import Checkpoint
from segstream.stream_app.health import Health, RepeatFilter
from segstream.stream_app.positions import LogBounds, position, repartitioned
from segstream.stream_app.worker import Worker


class FakeCore:
    in_process = False

    def __init__(self, log):
        self.log = log
        self.fail_next = False
        self.fence_next = False
        self.failed = False

    def _done(self, value=None, exc=None):
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(exc) if exc else fut.set_result(value)
        return fut

    def process(self, batch, now=None):
        if self.failed:
            self.log.append("refused")
            return self._done(exc=RuntimeError("needs reset"))
        if self.fail_next:
            self.fail_next, self.failed = False, True
            self.log.append("process-failed")
            return self._done(exc=RedisConnectionError("down"))
        if self.fence_next:
            self.fence_next, self.failed = False, True
            self.log.append("process-fenced")
            return self._done(exc=Fenced([batch[0].partition], "state"))
        self.log.append(f"process {batch[0].offsets[0]}" if batch else "process idle")
        return self._done(BatchOutput())

    def checkpoint(self, kafka_committed):
        self.log.append("checkpoint")
        return self._done()

    def reset(self):
        self.failed = False
        self.log.append("reset")
        return self._done()

    def revoke(self, partitions):
        self.log.append(f"revoke {partitions}")
        return self._done()

    def assign(self, logs):
        self.log.append(f"assign {[x.partition for x in logs]}")
        return self._done([])

    def model_stats(self):
        return self._done(("fake-model", {}, 0))

    def verify_store(self):
        return self._done()

    def memory_bytes(self):
        return 0


class FakePublisher:
    def __init__(self, log):
        self.log = log
        self.acks: list[asyncio.Future] = []

    async def start(self):
        pass

    async def send(self, messages):
        fut = asyncio.get_running_loop().create_future()
        self.acks.append(fut)
        self.log.append(f"send {len(self.acks)}")
        return fut


class FakeConsumer:
    def __init__(self, log):
        self.log = log

    def assignment(self):
        from aiokafka import TopicPartition

        return {TopicPartition("transactions", 0)}

    def highwater(self, tp):
        return None

    async def commit(self, offsets):
        self.log.append(f"commit {sorted((tp.partition, o) for tp, o in offsets.items())}")


def make():
    log: list[str] = []
    core, pub = FakeCore(log), FakePublisher(log)
    w = Worker(Settings(), core, pub, Health())
    w._delay = 0.0
    return w, core, pub, log


def batch(offset):
    return [PartitionBatch(0, [offset], [b"{}"])]


def no_highwater(p):
    return None


def test_a_commit_runs_its_steps_in_order_and_never_before_every_output_is_acknowledged():
    async def run():
        w, core, pub, log = make()
        cp = Checkpoint(w, FakeConsumer(log), "transactions", interval_s=0.0)
        await w.process(batch(1), no_highwater)
        cp.processed(batch(1))
        task = asyncio.ensure_future(cp.write())
        await asyncio.sleep(0.05)
        assert "checkpoint" not in log  # the ack of batch 1 is outstanding
        pub.acks[0].set_result(None)
        await cp.commit_offsets(await task)
        return log

    assert asyncio.run(run()) == ["process 1", "send 1", "checkpoint", "commit [(0, 2)]"]


def test_a_batch_stays_in_the_core_while_the_next_is_fetched_and_a_flush_sends_it():
    async def run():
        w, core, pub, log = make()
        await w.process(batch(1), no_highwater)
        assert log == ["process 1"]  # its outputs wait for the next call
        await w.process(batch(2), no_highwater)
        assert log == ["process 1", "process 2", "send 1"]
        pub.acks[0].set_result(None)
        await w.flush()
        return log

    assert asyncio.run(run())[-1] == "send 2"


def test_an_outage_resets_the_core_and_marks_the_worker_unhealthy_until_a_checkpoint_succeeds():
    async def run():
        w, core, pub, log = make()
        core.fail_next = True
        await w.process(batch(1), no_highwater)
        with pytest.raises(RedisConnectionError):
            await w.flush()
        await w.on_failure(RedisConnectionError("down"))
        assert not w.health.ok and "redis" in w.health.problems
        assert log == ["process-failed", "reset"]
        await w.process(batch(1), no_highwater)  # the core was reset: the re-read batch goes through
        await w.flush()
        pub.acks[0].set_result(None)
        await w.checkpoint({})
        assert w.health.ok
        return log

    asyncio.run(run())


def test_a_refused_output_batch_is_not_checkpointed():
    from aiokafka.errors import KafkaError

    async def run():
        w, core, pub, log = make()
        await w.process(batch(1), no_highwater)
        await w.flush()
        pub.acks[0].set_exception(KafkaError("refused"))
        with pytest.raises(KafkaError):
            await w.checkpoint({})
        return log

    assert "checkpoint" not in asyncio.run(run())


def test_a_fence_is_not_an_outage_no_backoff_and_health_stays():
    from segstream.stream_app import metrics

    async def run():
        w, core, pub, log = make()
        w._delay = 30.0  # a backoff would time the test out
        before = metrics.FENCED.labels("state")._value.get()
        core.fence_next = True
        await w.process(batch(1), no_highwater)
        with pytest.raises(Fenced):
            await w.flush()
        await asyncio.wait_for(w.on_failure(Fenced([0], "state")), 5)
        assert w.health.ok
        assert metrics.FENCED.labels("state")._value.get() == before + 1

    asyncio.run(run())


RETENTION = 7 * 86400.0


@pytest.mark.parametrize(
    "log_, checkpoint, want",
    [
        (LogBounds(0, 0, 100, None), None, (0, "")),  # a new deployment reads from the start
        (LogBounds(0, 0, 100, 60), (59, 1000.0, 60), (60, "")),  # the checkpoint decides
        (LogBounds(0, 0, 100, 80), (59, 1000.0, 60), (60, "")),  # Kafka ahead of Redis: re-read, never skip
        (LogBounds(0, 0, 100, 60), None, (None, "store_lost")),  # Redis lost what Kafka says was read
        (LogBounds(0, 0, 10, None), (59, 1000.0, 60), (None, "log_mismatch")),  # beyond the log's end
        (LogBounds(0, 0, 100, None), (59, 1000.0, 60), (None, "log_mismatch")),  # the broker lost its offsets
        (LogBounds(0, 0, 100, None), (59, 1000.0, None), (60, "")),  # crashed before Kafka took any commit
        (LogBounds(0, 70, 100, 60), (59, 1000.0, 60), (None, "log_mismatch")),  # retention deleted 60..69
    ],
)
def test_a_partition_resumes_at_its_checkpoint_or_halts_saying_why(log_, checkpoint, want):
    pos = position(log_, checkpoint, now=2000.0, offsets_retention_s=RETENTION)
    assert (pos.offset, pos.reason) == want
    assert bool(pos.detail) == (pos.offset is None)


def test_a_topic_with_another_partition_count_than_its_windows_halts_every_partition():
    assert repartitioned(2, recorded=4, partitions=4) is None
    assert repartitioned(2, recorded=4, partitions=0) is None  # the count not known: nothing to compare
    pos = repartitioned(5, recorded=4, partitions=6)
    assert (pos.partition, pos.offset, pos.reason) == (5, None, "repartitioned") and "recover" in pos.detail


def test_offsets_that_expired_with_an_idle_group_are_not_an_alarm():
    pos = position(LogBounds(0, 0, 100, None), (59, 0.0, 60), now=RETENTION + 1, offsets_retention_s=RETENTION)
    assert pos.offset == 60


def test_repeated_log_lines_are_held_back_and_counted():
    now = [0.0]
    f = RepeatFilter(period_s=30.0, clock=lambda: now[0])

    def rec(msg):
        return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, None, None)

    shown = [f.filter(rec("Unable connect to node")) for _ in range(1000)]
    assert shown.count(True) == 1
    assert f.filter(rec("something else"))
    now[0] = 31.0
    r = rec("Unable connect to node")
    assert f.filter(r) and "999 more like this" in r.getMessage()


def test_a_held_back_count_formats_under_fausts_formatter_on_every_handler():
    """Before: the rewritten record kept args None, mode's formatter made that (None,), and the
    TypeError escaped the filter into aiokafka's coordinator routine, which died: after a broker
    outage the worker never rejoined its group (a CI failure)."""
    from mode.utils.logging import ExtensionFormatter

    now = [0.0]
    f = RepeatFilter(period_s=30.0, clock=lambda: now[0])

    def rec():
        args = (1, OSError("Connect call failed"))
        return logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "Unable connect to node %s: %s", args, None)

    for _ in range(5):
        f.filter(rec())
    now[0] = 31.0
    r = rec()
    assert [f.filter(r), f.filter(r)] == [True, True]  # two handlers: one verdict
    assert "4 more like this" in ExtensionFormatter().format(r)
    held = rec()
    assert [f.filter(held), f.filter(held)] == [False, False]
    broken = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "no placeholder", ("extra",), None)
    assert f.filter(broken)  # let through as it is, never raised into the caller


def test_an_error_that_cannot_cross_a_process_arrives_as_its_type_and_message():
    """redis-py's cluster errors can hold a lock; from the core's process they must still arrive
    as the outage they are, not as a pickling TypeError that crashes the worker."""
    import pickle
    import threading

    from segstream.stream_app.core_runner import _portable

    err = RedisConnectionError("Error 111 connecting to 127.0.0.1:7100")
    err.node = threading.RLock()
    with pytest.raises(TypeError):
        pickle.dumps(err)
    sent = pickle.loads(pickle.dumps(_portable(err)))
    assert type(sent) is RedisConnectionError and str(sent) == str(err)
    fine = Fenced([1], "state")
    assert _portable(fine) is fine
