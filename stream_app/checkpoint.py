"""One checkpoint interval: the offsets processed since the last commit, and the commit itself.

A :class:`Checkpoint` owns, per partition, the next offset processed and published but
not yet covered by a window checkpoint (``pending``) and the last offset Kafka took
(``committed``), and the clock that says when a commit is due. :meth:`Checkpoint.write` and
:meth:`Checkpoint.commit_offsets` run the protocol's steps in order (after quix-streams'
``Checkpoint.commit``; step 4 runs outside the worker's lock, as a rebalance callback takes it):

1. publish the outputs of every batch the core still holds;
2. wait until the broker has acknowledged every output;
3. the core writes the window checkpoints (Redis): what was applied, per partition;
4. commit to Kafka the offsets those checkpoints cover, for partitions still owned.

Steps 1-3 are :meth:`Worker.checkpoint`. The invariant: Kafka never holds an offset
past a record that was neither applied to state nor dead-lettered for its own fault.
If any step fails nothing later runs, ``pending`` is dropped, and the ingest loop
re-reads from the last checkpoint.
"""

from __future__ import annotations

import logging
import time

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from . import metrics
from .batch import PartitionBatch
from .worker import Worker

log = logging.getLogger("segstream.worker")


class Checkpoint:
    def __init__(self, worker: Worker, consumer, topic: str, interval_s: float, clock=time.monotonic):
        self.worker = worker
        self.consumer = consumer
        self.topic = topic
        self.interval_s = interval_s
        self.clock = clock
        self.pending: dict[int, int] = {}  # partition -> next offset, processed but not checkpointed
        self.committed: dict[int, int] = {}  # partition -> the offset Kafka last took
        self.covered: dict[int, int] = {}  # partition -> the next offset its checkpoint covers
        self.dirty = False  # windows changed without new offsets (a quiet partition closed)
        self._last = clock()

    def processed(self, batch: list[PartitionBatch]) -> None:
        for pb in batch:
            self.pending[pb.partition] = pb.offsets[-1] + 1

    def report_lag(self, partitions) -> None:
        """What a crash would re-read, per partition: from the start, not only after a first commit."""
        for p in partitions:
            hw = self.consumer.highwater(TopicPartition(self.topic, p))
            if hw is not None and p in self.covered:
                metrics.CHECKPOINT_LAG.labels(str(p)).set(max(hw - self.covered[p], 0))

    @property
    def due(self) -> bool:
        return (bool(self.pending) or self.dirty) and self.clock() - self._last >= self.interval_s

    def drop(self) -> None:
        """What was processed since the last checkpoint is void: it will be read again."""
        self.pending.clear()

    def forget(self, partitions: list[int]) -> None:
        for p in partitions:
            self.pending.pop(p, None)
            self.committed.pop(p, None)
            self.covered.pop(p, None)

    async def write(self) -> dict[TopicPartition, int]:
        """Steps 1-3; returns the offsets step 4 may commit. Raises (and covers nothing) if any fails."""
        await self.worker.checkpoint(dict(self.committed))  # 1-3
        covered, self.pending, self.dirty, self._last = self.pending, {}, False, self.clock()
        self.covered.update(covered)
        self.report_lag(covered)
        owned = {tp.partition for tp in self.consumer.assignment() if tp.topic == self.topic}
        return {TopicPartition(self.topic, p): off for p, off in covered.items() if p in owned}

    async def commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        """Step 4, outside the worker's lock (a commit may wait for a rebalance, whose callbacks take it)."""
        try:
            with metrics.WORKER_SECONDS.labels("commit").time():
                await self.consumer.commit(offsets)  # 4
        except KafkaError as err:  # the checkpoint, not the commit, decides where a partition resumes
            log.warning("offset commit failed (%s); the checkpoint in Redis holds", err)
            return
        self.committed.update({tp.partition: off for tp, off in offsets.items()})
