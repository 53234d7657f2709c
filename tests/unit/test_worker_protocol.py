"""The worker's protocol with fakes for the core and the broker: the order of its steps."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from segstream.config import Settings
from segstream.state.fencing import Fenced
from segstream.stream_app.batch import BatchOutput, PartitionBatch
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

    def process(self, batch):
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
        self.log.append(f"process {batch[0].offsets[0]}")
        return self._done(BatchOutput())

    def checkpoint(self):
        self.log.append("checkpoint")
        return self._done()

    def reset(self):
        self.failed = False
        self.log.append("reset")
        return self._done()

    def revoke(self, partitions):
        self.log.append(f"revoke {partitions}")
        return self._done()

    def assign(self, partitions):
        self.log.append(f"assign {partitions}")
        return self._done()

    def model_stats(self):
        return self._done(("fake-model", {}, 0))


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


def make():
    log: list[str] = []
    core, pub = FakeCore(log), FakePublisher(log)
    w = Worker(Settings(), make_core=lambda s: core, make_publisher=lambda s: pub)
    w._delay = 0.0
    return w, core, pub, log


def batch(offset):
    return [PartitionBatch(0, [offset], [b"{}"])]


def no_highwater(p):
    return None


def test_checkpoint_never_runs_before_the_broker_acknowledged_every_output():
    async def run():
        w, core, pub, log = make()
        await w.handle(batch(1), no_highwater, checkpoint=False)
        task = asyncio.ensure_future(w.checkpoint())
        await asyncio.sleep(0.05)
        assert "checkpoint" not in log  # the ack of batch 1 is outstanding
        pub.acks[0].set_result(None)
        assert await task is True
        return log

    assert asyncio.run(run()) == ["process 1", "send 1", "checkpoint"]


def test_a_failed_batch_blocks_the_queue_until_reset_and_health_returns_on_an_idle_checkpoint():
    async def run():
        w, core, pub, log = make()
        core.fail_next = True
        ok = await w.handle(batch(1), no_highwater, checkpoint=False, rewind=True)
        assert ok is False and not w.healthy
        assert log == ["process-failed", "reset"]
        # the core was reset: the re-read batch goes through
        assert await w.handle(batch(1), no_highwater, checkpoint=False, rewind=True)
        pub.acks[0].set_result(None)
        core.fail_next = True
        w.healthy = False  # unhealthy after some failure, then an idle worker checkpoints fine
        assert await w.checkpoint() and w.healthy
        return log

    asyncio.run(run())


def test_a_refused_output_batch_is_not_checkpointed():
    from aiokafka.errors import KafkaError

    async def run():
        w, core, pub, log = make()
        await w.handle(batch(1), no_highwater, checkpoint=False)
        pub.acks[0].set_exception(KafkaError("refused"))
        assert await w.checkpoint() is False and not w.healthy
        return log

    log = asyncio.run(run())
    assert "checkpoint" not in log and log[-1] == "reset"


def test_revoke_checkpoints_first():
    async def run():
        w, core, pub, log = make()
        await w.handle(batch(1), no_highwater, checkpoint=False)
        pub.acks[0].set_result(None)
        assert await w.revoke([0])
        return log

    assert asyncio.run(run())[-2:] == ["checkpoint", "revoke [0]"]


@pytest.mark.parametrize("ahead", [True, False])
def test_ahead_leaves_the_last_batch_queued_for_the_next_call(ahead):
    async def run():
        w, core, pub, log = make()
        await w.handle(batch(1), no_highwater, checkpoint=False, ahead=ahead)
        return log

    assert asyncio.run(run()) == (["process 1"] if ahead else ["process 1", "send 1"])


def test_a_fenced_batch_is_dropped_without_backoff_and_the_worker_stays_healthy():
    """A zombie's refused write is not an outage: reset, retry the batch (the core now skips
    the partition it lost) and stay healthy; the fence is counted."""
    from segstream.stream_app import metrics

    async def run():
        w, core, pub, log = make()
        w._delay = 30.0  # a backoff would time the test out
        before = metrics.FENCED.labels("state")._value.get()
        core.fence_next = True
        assert await asyncio.wait_for(w.handle(batch(1), no_highwater, checkpoint=False), 5)
        assert w.healthy
        assert metrics.FENCED.labels("state")._value.get() == before + 1
        return log

    assert asyncio.run(run()) == ["process-fenced", "reset", "process 1", "send 1"]


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
