"""Batch ingest: aiokafka's ``getmany`` feeding whole batches to the worker's handler.

Faust hands an agent one message at a time through several asyncio queues and
tasks, which costs far more than our processing of the message. Here one
``getmany`` yields up to a batch of records, the handler runs and publishes them,
and offsets are committed only once a window checkpoint covers them. The next
batch is fetched while the current one is processed and, under load, handed to the
core before the current one's outputs are sent, so the broker's round trip,
aiokafka's record unpacking and the core's work overlap instead of adding up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from segstream.config import Settings

from . import metrics
from .batch import PartitionBatch
from .kafka_config import aiokafka_options

log = logging.getLogger("segstream.worker")
QUIET_CHECK_S = 2.0  # how often an idle worker looks for windows the wall clock has passed


class _Revoker(ConsumerRebalanceListener):
    """Checkpoint and commit before partitions go, so the next owner replays little."""

    def __init__(
        self,
        revoke: Callable[[list[int]], Awaitable[bool]],
        commit: Callable[[], Awaitable[None]],
        assign: Callable[[list[int]], Awaitable[None]],
    ):
        self.revoke = revoke
        self.commit = commit
        self.assign = assign
        self.revocations = 0  # a batch fetched before the latest revoke is stale

    async def on_partitions_revoked(self, revoked) -> None:
        self.revocations += 1
        if await self.revoke([tp.partition for tp in revoked]):
            await self.commit()
        # else: nothing is committed and the next owner (this worker, too, as aiokafka
        # revokes every partition on a rebalance) re-reads from the last commit

    async def on_partitions_assigned(self, assigned) -> None:
        log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))
        await self.assign([tp.partition for tp in assigned])


async def consume(
    s: Settings,
    handle: Callable[..., Awaitable[bool]],
    checkpoint: Callable[[], Awaitable[bool]],
    revoke: Callable[[list[int]], Awaitable[bool]],
    assign: Callable[[list[int]], Awaitable[None]],
    close_quiet: Callable[[float], Awaitable[bool]] | None = None,
) -> None:
    """Fetch, process and publish each batch; checkpoint and commit every ``checkpoint_interval_s``.

    Offsets are committed only once a checkpoint covers them, so a restarted worker
    never starts past what its windows hold. If Redis fails between checkpoints the
    in-memory windows are dropped and the consumer seeks back to the last commit.
    While no record arrives, ``close_quiet`` runs every few seconds with the wall time.
    """
    consumer = AIOKafkaConsumer(
        **aiokafka_options(s),
        group_id=s.consumer_group,
        session_timeout_ms=s.kafka_session_timeout_ms,
        heartbeat_interval_ms=s.kafka_session_timeout_ms // 3,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=16 << 20,
    )
    pending: dict[TopicPartition, int] = {}  # processed and published, not yet checkpointed
    covered: dict[TopicPartition, int] = {}  # next offset each partition's last checkpoint covers

    def report_lag(partitions) -> None:
        for tp in partitions:
            hw = consumer.highwater(tp)
            if hw is not None and tp in covered:
                metrics.CHECKPOINT_LAG.labels(str(tp.partition)).set(max(hw - covered[tp], 0))

    async def commit() -> None:
        owned = consumer.assignment()
        offsets = {tp: off for tp, off in pending.items() if tp in owned}
        pending.clear()
        covered.update(offsets)  # commit() runs only after the checkpoint that covers them
        report_lag(offsets)
        if offsets:
            try:
                await consumer.commit(offsets)
            except KafkaError as err:  # safe to skip: the checkpoint, not the commit, decides what is counted
                log.warning("offset commit failed (%s); a restart re-reads a little more", err)

    async def fetch() -> tuple[dict, int]:
        got = await consumer.getmany(timeout_ms=int(s.batch_timeout_s * 1000), max_records=s.batch_size)
        return got, listener.revocations

    async def cancel(task: asyncio.Future) -> None:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task  # a batch it already fetched is dropped: the seek or the next assignment re-reads it

    async def rewind() -> None:
        nonlocal fetching
        await cancel(fetching)
        pending.clear()
        for tp in list(consumer.assignment()):
            try:
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    covered[tp] = committed
                    consumer.seek(tp, committed)
            except IllegalStateError:  # revoked while we asked: its next owner starts from the commit
                continue
        fetching = asyncio.ensure_future(fetch())

    async def assigned(partitions: list[int]) -> None:
        # lag against the checkpoints from the start, not only after this worker's first commit
        for p in partitions:
            tp = TopicPartition(s.topic_transactions, p)
            with suppress(KafkaError):
                covered[tp] = await consumer.committed(tp) or 0
        await assign(partitions)

    listener = _Revoker(revoke, commit, assigned)
    consumer.subscribe([s.topic_transactions], listener=listener)
    await consumer.start()

    def highwater(p: int) -> int | None:
        return consumer.highwater(TopicPartition(s.topic_transactions, p))

    spaced = s.checkpoint_interval_s > 0
    held = False  # the last batch's outputs wait in the handler for the next call
    last = quiet_check = time.monotonic()
    fetching = asyncio.ensure_future(fetch())
    try:
        while True:
            with metrics.WORKER_SECONDS.labels("fetch").time():
                got, revocations = await fetching
            fetching = asyncio.ensure_future(fetch())
            if revocations != listener.revocations:
                # fetched before a rebalance: the new assignment starts again from the last commit
                continue
            report_lag(got)
            batch = [  # columns, not an object per record
                PartitionBatch(
                    tp.partition,
                    [m.offset for m in msgs],
                    [m.value for m in msgs],
                    msgs[0].timestamp / 1000.0,
                    [m.key for m in msgs],
                )
                for tp, msgs in got.items()
                if msgs
            ]
            due = time.monotonic() - last >= s.checkpoint_interval_s
            if batch or held:
                # Under load (a full batch) leave this batch's outputs to the next call, so the
                # core processes it while the next batch is fetched; an empty poll sends them.
                held = spaced and not due and sum(map(len, batch)) >= s.batch_size
                if not await handle(batch, highwater, checkpoint=due, rewind=spaced, ahead=held):
                    held = False
                    await rewind()
                    continue
                pending.update({tp: msgs[-1].offset + 1 for tp, msgs in got.items() if msgs})
            elif not (due and pending):
                if close_quiet is not None and s.idle_close_s > 0 and time.monotonic() - quiet_check >= QUIET_CHECK_S:
                    quiet_check = time.monotonic()
                    if not await close_quiet(time.time()):
                        await rewind()
                        continue
                    with metrics.WORKER_SECONDS.labels("commit").time():
                        await commit()  # nothing pending: the checkpoint covered it
                continue
            elif not await checkpoint():  # idle: write what the last batches left pending
                await rewind()
                continue
            if due:  # always, when checkpoints are not spaced out
                with metrics.WORKER_SECONDS.labels("commit").time():
                    await commit()
                last = time.monotonic()
    finally:
        await cancel(fetching)
        await consumer.stop()
