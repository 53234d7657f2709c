"""Batch ingest: aiokafka's ``getmany`` feeding whole batches to the worker's handler.

Faust hands an agent one message at a time through several asyncio queues and
tasks, which costs far more than our processing of the message. Here one
``getmany`` yields up to a batch of records, the handler runs them, and the
offsets are committed only after the handler has published and checkpointed.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from segstream.config import Settings

from .kafka_config import aiokafka_options
from .processor import PartitionBatch

log = logging.getLogger("segstream.worker")


class _Revoker(ConsumerRebalanceListener):
    def __init__(self, revoke: Callable[[list[int]], Awaitable[None]]):
        self.revoke = revoke

    async def on_partitions_revoked(self, revoked) -> None:
        await self.revoke([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned) -> None:
        log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))


async def consume(
    s: Settings,
    handle: Callable[[list[PartitionBatch], Callable[[int], int | None]], Awaitable[None]],
    revoke: Callable[[list[int]], Awaitable[None]],
) -> None:
    consumer = AIOKafkaConsumer(
        **aiokafka_options(s),
        group_id=s.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=16 << 20,
    )
    consumer.subscribe([s.topic_transactions], listener=_Revoker(revoke))
    await consumer.start()

    def highwater(p: int) -> int | None:
        return consumer.highwater(TopicPartition(s.topic_transactions, p))

    try:
        while True:
            got = await consumer.getmany(timeout_ms=int(s.batch_timeout_s * 1000), max_records=s.batch_size)
            batch = [  # columns, not an object per record
                PartitionBatch(tp.partition, [m.offset for m in msgs], [m.value for m in msgs], msgs[0].timestamp / 1000.0)
                for tp, msgs in got.items()
                if msgs
            ]
            if not batch:
                continue
            await handle(batch, highwater)
            await consumer.commit({tp: msgs[-1].offset + 1 for tp, msgs in got.items() if msgs})
    finally:
        await consumer.stop()
