"""The worker's loop: fetch a batch, process it, publish, checkpoint, commit. Read this first.

:meth:`IngestLoop.run` repeats :meth:`IngestLoop.step`:

1. **fetch** a batch with aiokafka's ``getmany`` (the next is fetched while this one
   is processed, so the broker's round trip and the core's work overlap);
2. **process** it: the core decodes, windows and applies it (:meth:`Worker.process`);
   its segment changes and dead letters are sent while the core works on the next;
3. when the checkpoint interval is due, **commit** (:class:`Checkpoint`): publish,
   await the broker's acks, write the window checkpoints, then commit the offsets
   they cover. Offsets are committed only once Redis holds what they cover.

On assignment each partition is claimed and **positioned** at the record after its
window checkpoint in Redis (positions.py), never at Kafka's committed offset alone;
a partition whose log and checkpoint disagree is **halted** (paused, reported on
``/healthz`` and in ``segstream_halted_partitions``) until they agree again.

On a failure (:meth:`IngestLoop.failed`): nothing processed since the last checkpoint
counts. An outage (Redis, the broker refusing outputs) backs off and **rewinds** every
partition to its checkpoint. A **fence** (another claim on a partition) asks Kafka
whether this worker still owns it: an owner claims it again from its checkpoint, a
zombie pauses it until Kafka's rebalance takes it away. A lost store or a log that no
longer matches halts the partitions until an operator repairs it (``segstream recover``).
The core's process dying ends the worker: a restart is the repair.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError
from redis.exceptions import RedisError

from segstream.config import Settings
from segstream.errors import LayoutChanged, NamespaceShared, StoreLost, StoreMayEvict, SystemFailure
from segstream.state.fencing import Fenced

from . import erasure_log, metrics
from .backpressure import MemoryBound
from .batch import PartitionBatch
from .checkpoint import Checkpoint
from .core_runner import CoreDown
from .halts import Halts
from .health import Health
from .positions import LogBounds, Position
from .rebalance import Rebalance
from .worker import Worker

log = logging.getLogger("segstream.worker")
FAILURES = (RedisError, KafkaError, SystemFailure, OSError)
# failures that halt every partition until an operator repairs them; the rest are ridden out
HALTING = (StoreLost, NamespaceShared, StoreMayEvict, LayoutChanged)
QUIET_CHECK_S = 2.0  # how often an idle worker looks for windows the wall clock has passed
RECHECK_S = 5.0  # how often a halted partition is checked again


class IngestLoop:
    def __init__(self, settings: Settings, worker: Worker, make_consumer: Callable[[Settings], Any], health: Health):
        self.settings = settings
        self.topic = settings.topic_transactions
        self.worker = worker
        self.make_consumer = make_consumer  # aiokafka's consumer wants a running event loop: made in run()
        self.consumer = None
        self.health = health
        self.checkpoint: Checkpoint | None = None
        self.halted = Halts(health)
        self.rebalances = 0  # revocations and assignments: a batch whose fetch began before the last is stale
        self.rewind_needed = False
        self._fetching: asyncio.Future | None = None
        self._zombies: set[int] = set()  # partitions Kafka says are no longer ours: paused until the rebalance
        self.bound = MemoryBound(settings, health)  # at it, every partition is paused
        self._quiet_check = self._recheck = time.monotonic()

    async def run(self) -> None:
        await self.worker.start()
        self.consumer = self.make_consumer(self.settings)
        self.checkpoint = Checkpoint(self.worker, self.consumer, self.topic, self.settings.checkpoint_interval_s)
        self.consumer.subscribe([self.topic], listener=Rebalance(self.revoked, self.assigned))
        await self.consumer.start()
        self._fetching = asyncio.ensure_future(self._fetch())
        try:
            while True:
                await self.step()
        finally:
            await self._cancel_fetch()
            await self.consumer.stop()

    async def step(self) -> None:
        """Steps 1-3 of the module docstring, once."""
        got, rebalances = {}, self.rebalances
        try:
            if self._fetching is None:
                self._fetching = asyncio.ensure_future(self._fetch())
            got, rebalances = await self._fetching  # 1
        except OffsetOutOfRangeError as err:
            # the log's start passed the next record to read (retention, deleted records): the
            # consumer resets nothing (auto_offset_reset "none", app.py); every partition goes back
            # to its checkpoint, and those whose records are gone halt (positions.py: log_mismatch)
            log.warning("the next records to read are gone from the log: %s", err)
            self.rewind_needed = True
        except NoOffsetForPartitionError:
            pass  # the fetcher looked before the assignment's seek to the checkpoint (rebalance.py); it has one now
        except KafkaError as err:
            log.warning("fetch failed (%s)", err)
        self._fetching = asyncio.ensure_future(self._fetch())
        offsets = None
        async with self.worker.lock:
            try:
                if self.rewind_needed:
                    await self.rewind()
                    return
                if rebalances != self.rebalances:
                    # fetched across a rebalance: the consumer's position is past these records now,
                    # so dropping them alone would skip them; every partition goes back to its checkpoint
                    await self.rewind()
                    return
                batch = self._batch(got)
                self.checkpoint.report_lag(pb.partition for pb in batch)
                if batch:
                    await self.worker.process(batch, self._highwater)  # 2
                    self.checkpoint.processed(batch)
                else:
                    await self.worker.flush()
                    await self._close_quiet()
                self._memory_bound()
                if self.checkpoint.due:
                    offsets = await self.checkpoint.write()  # 3: steps 1-3 of a commit
                if (self.halted or self._zombies) and time.monotonic() - self._recheck >= RECHECK_S:
                    self._recheck = time.monotonic()
                    owned = await self._zombie_check(sorted(self._zombies))  # a refusal may have been transient
                    await self.position(sorted({*self.halted.partitions(), *owned}))
                elif time.monotonic() - self._recheck >= RECHECK_S:  # busy or idle (a checkpoint looks too)
                    self._recheck = time.monotonic()
                    await self.worker.verify_store()
            except FAILURES as err:
                await self.failed(err)
        if offsets:
            await self.checkpoint.commit_offsets(offsets)  # step 4 of a commit, outside the lock

    async def failed(self, err: BaseException) -> None:
        """Nothing since the last checkpoint counts; what happens next depends on whose fault it was."""
        self.checkpoint.drop()
        if isinstance(err, CoreDown):
            log.critical("%s; stopping: a restart resumes from the last checkpoint", err)
            raise err
        await self.worker.on_failure(err)
        if isinstance(err, Fenced):
            await self._zombie_check(err.partitions)
        elif isinstance(err, HALTING) or getattr(err, "reason", "") == "log_mismatch":
            for tp in self._assigned():
                self.halt(Position(tp.partition, None, err.reason, str(err)))
        self.rewind_needed = True
        with suppress(*FAILURES):
            await self.rewind()

    async def rewind(self) -> None:
        """Drop what was fetched and processed since the last checkpoint and read every partition again
        from it (what the core applied meanwhile is guarded per window, and announced again)."""
        await self._cancel_fetch()
        await self.worker.discard()
        self.checkpoint.drop()
        # after an outage Redis may be back from a snapshot older than an erasure: the log first
        replayed = await asyncio.get_running_loop().run_in_executor(None, erasure_log.replay_into, self.settings)
        if replayed.restored:
            log.warning("%d erasures were missing from Redis; read back from the erasures topic", replayed.restored)
        await self.position([tp.partition for tp in self._assigned() if not self._paused_zombie(tp)])
        self.rewind_needed = False
        self._fetching = asyncio.ensure_future(self._fetch())

    async def position(self, partitions: list[int]) -> None:
        """Claim ``partitions`` and seek each to the record after its checkpoint, or halt it."""
        if not partitions:
            return
        tps = [TopicPartition(self.topic, p) for p in partitions]
        starts = await self.consumer.beginning_offsets(tps)
        ends = await self.consumer.end_offsets(tps)
        count = len(self.consumer.partitions_for_topic(self.topic) or ())
        logs = [LogBounds(tp.partition, starts[tp], ends[tp], await self.consumer.committed(tp), count) for tp in tps]
        try:
            positions = await self.worker.assign(logs)
        except HALTING as err:
            positions = [Position(p, None, err.reason, str(err)) for p in partitions]
        for pos in positions:
            if pos.offset is None:
                self.halt(pos)
            else:
                self.consumer.seek(TopicPartition(self.topic, pos.partition), pos.offset)
                self.checkpoint.covered[pos.partition] = pos.offset
                self._resume(pos)

    def halt(self, pos: Position) -> None:
        self.halted.add(pos)
        with suppress(Exception):
            self.consumer.pause(TopicPartition(self.topic, pos.partition))

    def _resume(self, pos: Position) -> None:
        self.halted.lift(pos)
        if not self.bound.reached:
            self.consumer.resume(TopicPartition(self.topic, pos.partition))

    def _memory_bound(self) -> None:
        w = self.worker
        changed = self.bound.check(w.open_windows, w.core.memory_bytes(), w.headroom_bytes)
        if changed is not None:
            live = [tp for tp in self._assigned() if tp.partition not in self.halted and not self._paused_zombie(tp)]
            (self.consumer.pause if changed else self.consumer.resume)(*live)

    # --- rebalances (aiokafka calls these inside a fetch) ------------------------------
    async def revoked(self, partitions: list[int]) -> None:
        """Checkpoint and commit before partitions go, so the next owner re-reads little."""
        self.rebalances += 1
        offsets = None
        async with self.worker.lock:
            try:
                offsets = await self.checkpoint.write()
            except FAILURES as err:  # nothing is committed; the next owner re-reads from the checkpoint
                self.checkpoint.drop()
                log.warning("checkpoint before a rebalance failed (%s); the next owner re-reads from the last", err)
                await self.worker.on_failure(err)
            self.halted.drop(partitions)
            self.checkpoint.forget(partitions)
            with suppress(*FAILURES):
                await self.worker.revoke(partitions)
        if offsets:
            await self.checkpoint.commit_offsets(offsets)

    async def assigned(self, partitions: list[int]) -> None:
        log.info("assigned partitions %s", sorted(partitions))
        async with self.worker.lock:
            self._zombies.clear()
            try:
                await self.position(partitions)
            except FAILURES as err:
                log.warning("positioning partitions %s failed (%s); retrying before any is read", partitions, err)
                self.rewind_needed = True
            # aiokafka's fetcher may have read them from Kafka's positions while this ran
            self.rebalances += 1

    # --- helpers ------------------------------------------------------------------
    async def _zombie_check(self, partitions: list[int]) -> list[int]:
        """Kafka's group generation decides who owns a partition: re-commit its committed offset.
        Refused: this worker may be a zombie; the partition stays paused until the rebalance, or
        until a later check is accepted. Returns the partitions Kafka says are ours."""
        owned = []
        for p in partitions:
            tp = TopicPartition(self.topic, p)
            if tp not in self._assigned():
                self._zombies.discard(p)
                continue
            try:
                committed = await self.consumer.committed(tp)
                if committed is not None:
                    await self.consumer.commit({tp: committed})
            except Exception as err:  # noqa: BLE001 - any refusal means: not ours, for now
                if p not in self._zombies:
                    log.warning("partition %d: Kafka refused this worker's commit (%s); paused", p, err)
                self._zombies.add(p)
                with suppress(Exception):
                    self.consumer.pause(tp)
                continue
            self._zombies.discard(p)
            owned.append(p)
        return owned

    def _paused_zombie(self, tp: TopicPartition) -> bool:
        return tp.partition in self._zombies

    async def _close_quiet(self) -> None:
        if self.settings.idle_close_s <= 0 or time.monotonic() - self._quiet_check < QUIET_CHECK_S:
            return
        self._quiet_check = time.monotonic()
        if await self.worker.close_quiet(time.time()):
            self.checkpoint.dirty = True

    def _assigned(self) -> list[TopicPartition]:
        return [tp for tp in self.consumer.assignment() if tp.topic == self.topic]

    def _highwater(self, partition: int) -> int | None:
        return self.consumer.highwater(TopicPartition(self.topic, partition))

    def _batch(self, got: dict) -> list[PartitionBatch]:
        """Columns, not an object per record; records of halted or zombie partitions are not read."""
        return [
            PartitionBatch(
                tp.partition,
                [m.offset for m in msgs],
                [m.value for m in msgs],
                msgs[0].timestamp / 1000.0,
                [m.key for m in msgs],
            )
            for tp, msgs in got.items()
            if msgs and tp.partition not in self.halted and not self._paused_zombie(tp)
        ]

    async def _fetch(self) -> tuple[dict, int]:
        """A batch, and the rebalances counted when its fetch began: one that spans a rebalance may
        hold records from before it, so it is dropped and read again from the new positions."""
        s, rebalances = self.settings, self.rebalances
        with metrics.WORKER_SECONDS.labels("fetch").time():
            got = await self.consumer.getmany(timeout_ms=int(s.batch_timeout_s * 1000), max_records=s.batch_size)
        return got, rebalances

    async def _cancel_fetch(self) -> None:
        if self._fetching is not None:
            self._fetching.cancel()
            with suppress(BaseException):
                await self._fetching  # a batch it already fetched is dropped: the seek re-reads it
            self._fetching = None
