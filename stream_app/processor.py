"""One batch of Kafka records through the core, with replay-safe bookkeeping.

Synchronous and free of Faust, so the worker runs it in a process (or thread) of
its own and tests can drive it directly. Per partition it keeps a window aggregator (the
watermark is per partition, as Kafka orders events only within one) and the
last offset consumed; records at or below that offset are replays and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segstream.assembly import build_pipeline, event_limits, window_aggregator
from segstream.config import Settings
from segstream.core.events import EventRejected, dead_letter
from segstream.core.personality import CATEGORIES
from segstream.core.pipeline import ingest_payloads
from segstream.core.windows import WindowAggregator
from state.redis_client import connect
from state.redis_store import RedisStateStore
from state.redis_windows import WindowCheckpoints

from .batch import BatchOutput, PartitionBatch


@dataclass
class _Partition:
    windows: WindowAggregator
    offset: int  # last offset consumed
    dirty: bool = False


class StreamProcessor:
    def __init__(self, settings: Settings, topic: str | None = None):
        self.settings = settings
        self.topic = topic or settings.topic_transactions
        self.redis = connect(settings.redis_url)
        self.pipeline = build_pipeline(settings, lambda m: RedisStateStore(
            self.redis, m.hidden_size, m.version, prefix=settings.redis_prefix, history=settings.history_windows))
        self.store: RedisStateStore = self.pipeline.engine.store
        self.checkpoints = WindowCheckpoints(self.redis, len(CATEGORIES), prefix=settings.redis_prefix)
        self.limits = event_limits(settings)
        self._parts: dict[int, _Partition] = {}
        self._failed = False  # a batch failed midway: refuse work until reset()

    @property
    def model_version(self) -> str:
        return self.pipeline.engine.model.version

    def _partition(self, p: int) -> _Partition:
        part = self._parts.get(p)
        if part is None:
            offset, max_event_time, windows = self.checkpoints.load(self.topic, p)
            agg = window_aggregator(self.settings)
            agg.restore(windows, max_event_time)
            part = self._parts[p] = _Partition(agg, offset)
        return part

    def process(self, batch: list[PartitionBatch]) -> BatchOutput:
        """Refuses to run after a failed batch until reset(): the worker may have queued
        this batch behind it, and it must not apply windows on top of half a batch."""
        if self._failed:
            raise RuntimeError("an earlier batch failed; the processor needs reset() first")
        try:
            return self._process(batch)
        except BaseException:
            self._failed = True
            raise

    def _process(self, batch: list[PartitionBatch]) -> BatchOutput:
        out = BatchOutput()
        touched: list[int] = []
        for pb in batch:
            part = self._partition(pb.partition)
            offsets, values, keys = np.asarray(pb.offsets, np.int64), pb.values, pb.keys
            fresh = offsets > part.offset
            if not fresh.all():  # re-delivered after a restart: already counted
                out.outcomes["replayed"] += int((~fresh).sum())
                keep = np.flatnonzero(fresh).tolist()
                offsets, values = offsets[keep], [values[i] for i in keep]
                keys = None if keys is None else [keys[i] for i in keep]
            if not len(values):
                continue
            part.offset, part.dirty = int(offsets.max()), True
            touched.append(pb.partition)
            ing = ingest_payloads(part.windows, values, self.limits, keys)
            out.outcomes.update(ing.counts())
            late = EventRejected("late:window_closed", "the watermark had passed the end of its window")
            bad = ing.rejected + [(i, late) for i in ing.late_positions()]
            for i, err in bad:
                out.dead_letters.append(dead_letter(values[i], err, source_topic=self.topic,
                                                    source_partition=pb.partition, source_offset=int(offsets[i])))
        closed = [w for p in sorted(touched) for w in self._parts[p].windows.poll()]
        out.windows_closed = len(closed)
        out.engine = self.pipeline.process(closed)
        out.changes = out.engine.changes
        out.open_windows = sum(p.windows.open_windows for p in self._parts.values())
        return out

    def checkpoint(self) -> None:
        """Persist what changed; call only after the batch's outputs are published."""
        for p, part in self._parts.items():
            if part.dirty:
                deltas, closed = part.windows.checkpoint_delta()
                self.checkpoints.save(self.topic, p, part.offset, part.windows.max_event_time, deltas, closed,
                                      part.windows.window_numbers)
                part.dirty = False

    def reset(self) -> None:
        """Forget all in-memory windows: after a failed batch they may hold half of it.

        The next batch restores each partition from its last checkpoint and re-reads
        what came after; the window guard makes re-applying the engine's work harmless.
        """
        self._parts.clear()
        self._failed = False

    def revoke(self, partitions: list[int]) -> None:
        """Forget partitions another worker now owns; their checkpoint is already in Redis."""
        for p in partitions:
            self._parts.pop(p, None)

    def model_stats(self) -> tuple[str, dict[int, int], int]:
        """Model version, customers per segment and the centroid version: the worker's model gauges."""
        return self.model_version, self.store.segment_sizes(), self.store.centroid_stats().version
