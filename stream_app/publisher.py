"""Segment changes and dead letters to Kafka: one record batch per partition per input batch.

The worker needs the broker's acks before it checkpoints, so outputs are sent a
batch at a time and their acks come back as one future, which the worker awaits
while it processes the next batch. Faust's ``topic.send`` costs ~250 µs per message
on this path (its buffer, futures and sensors); aiokafka's batch API costs far less.
Keys are partitioned as Kafka's default partitioner does, so a customer's changes
stay in order on one partition, as producers using the default expect.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from segstream.config import Settings

from .kafka_config import aiokafka_options


class OutputPublisher:
    def __init__(self, s: Settings):
        self.settings = s
        self.producer: AIOKafkaProducer | None = None  # aiokafka wants a running event loop
        self.partitioner = DefaultPartitioner()

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(**aiokafka_options(self.settings), acks="all")
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def send(self, messages: dict[str, list[tuple[bytes, bytes]]]) -> asyncio.Future:
        """Hand keyed messages to the producer; the future resolves once the broker has all of them.

        Order holds per output partition: aiokafka keeps one request in flight per partition.
        """
        acks = []
        for topic, msgs in messages.items():
            if not msgs:
                continue
            partitions = sorted(await self.producer.partitions_for(topic))
            by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
            for key, value in msgs:
                by_partition[self.partitioner(key, partitions, partitions)].append((key, value))
            for partition, part_msgs in by_partition.items():
                batch = self.producer.create_batch()
                for key, value in part_msgs:
                    if batch.append(key=key, value=value, timestamp=None) is None:  # batch full
                        acks.append(await self.producer.send_batch(batch, topic, partition=partition))
                        batch = self.producer.create_batch()
                        if batch.append(key=key, value=value, timestamp=None) is None:
                            raise ValueError(f"a {len(value)}-byte message does not fit in a record batch")
                acks.append(await self.producer.send_batch(batch, topic, partition=partition))
        return asyncio.gather(*acks)  # raises if the broker refused any of them
