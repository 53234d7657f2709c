"""One batch of Kafka records through the core, with replay-safe bookkeeping.

Synchronous and free of Faust, so the worker runs it in a process (or thread) of
its own and tests can drive it directly. Per partition it keeps a window aggregator (the
watermark is per partition, as Kafka orders events only within one) and the
last offset consumed; records at or below that offset are replays and skipped.

Each partition is claimed when Kafka assigns it (:meth:`StreamProcessor.assign`), which
also says where it resumes or why it must not (positions.py), and every checkpoint and
state commit for it is fenced by that claim: a worker that was paused past its session
and resumed finds its writes refused and raises :class:`Fenced` for every later batch of
the partition until it is assigned again; nothing it read is skipped or committed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import orjson

from segstream.assembly import build_pipeline, event_limits, window_aggregator
from segstream.config import Settings
from segstream.core.events import EventRejected, dead_letter
from segstream.core.personality import CATEGORIES
from segstream.core.pipeline import ingest_payloads
from segstream.core.windows import ClosedWindow, WindowAggregator
from segstream.errors import EngineFailing, RecordError, SystemFailure
from segstream.state.eviction import EvictionWatch
from segstream.state.fencing import Fenced
from segstream.state.forgotten import ForgottenCustomers
from segstream.state.layout import StateLayout
from segstream.state.redis_client import UNAVAILABLE, client_for, verify
from segstream.state.redis_store import RedisStateStore
from segstream.state.redis_windows import WindowCheckpoints

from .batch import BATCHES_AHEAD, BatchOutput, PartitionBatch
from .partitioner import Partitioner
from .positions import LogBounds, Position, erasures_restored, position, repartitioned

log = logging.getLogger("segstream.worker")


@dataclass
class _Partition:
    windows: WindowAggregator
    offset: int  # last offset consumed
    saved: int  # last offset checkpointed: what Redis holds unless it went back in time
    dirty: bool = False
    seen: float = field(default_factory=time.time)  # wall time of its last record (or of its restore)
    # records below this offset whose customer now belongs to another partition were added to that
    # partition's windows by `segstream recover` after the topic gained partitions (stream_app/repartition.py)
    moved_below: int = -1
    home: Partitioner | None = None


class StreamProcessor:
    def __init__(self, settings: Settings, topic: str | None = None):
        self.settings = settings
        self.topic = topic or settings.topic_transactions
        self.redis = client_for(settings)
        verify(self.redis)
        self.pipeline = build_pipeline(
            settings,
            lambda m: RedisStateStore.for_deployment(self.redis, settings, m.hidden_size, m.version, self._fences),
            isolate_except=(*UNAVAILABLE, SystemFailure),  # outages stop the batch; a bug sets windows aside
        )
        self.store: RedisStateStore = self.pipeline.engine.store
        self.checkpoints = WindowCheckpoints(self.redis, len(CATEGORIES), prefix=settings.redis_prefix)
        self.evictions = EvictionWatch(self.redis, settings.redis_prefix)
        self.layout = StateLayout.for_deployment(self.redis, settings, self.store.keys)
        self.limits = event_limits(settings)
        self.forgotten = ForgottenCustomers(self.redis, settings.erasure_namespace, settings.redis_prefix)  # withheld
        self.forgotten.refresh()
        self._parts: dict[int, _Partition] = {}
        self._epochs: dict[int, int] = {}  # partition -> epoch claimed at assignment
        self._fenced: set[int] = set()  # claimed by a newer owner: skipped until assigned again
        self._failed = False  # a batch failed midway: refuse work until reset()
        self._kafka_took: set[int] = set()  # partitions whose checkpoint records a Kafka commit
        self._touched: list[int] = []  # partitions of the batch being applied: its state writes are fenced by them

    def _fences(self) -> list[tuple[str, int, int]]:
        """(epoch key, epoch, partition) the state commits of the current batch are made under."""
        return [(self.checkpoints.epoch_key(self.topic, p), self._epochs[p], p) for p in self._touched]

    @property
    def model_version(self) -> str:
        return self.pipeline.engine.model.version

    def assign(self, logs: list[LogBounds]) -> list[Position]:
        """Kafka gave us these partitions: claim each, then say where it resumes, or why it must not.

        A partition whose log and checkpoint disagree (positions.py) is claimed but halted: it
        stays out of the processor until a later call finds them agreeing again."""
        out = []
        self.verify_store()  # a Redis that may evict, or did, halts every partition
        self.store.resync()  # what Redis holds now is where this owner starts
        self.forgotten.refresh()  # a recover may have just read erasures back into a Redis that lost them
        purge = self.forgotten.purge_pending()
        count = max((log_.partitions for log_ in logs), default=0)
        recorded = self.checkpoints.layout(self.topic, count) if count else 0
        if recorded != count:
            self.checkpoints.layout_changed_at(self.topic, time.time())
        for log_ in logs:
            p = log_.partition
            self._parts.pop(p, None)
            self._fenced.discard(p)
            self._epochs[p] = self._claim(p)
            self.store.centroid_stats()  # raises StoreLost if the store lost its centroids
            pos = (
                (erasures_restored(p) if purge else None)
                or repartitioned(p, recorded, count)
                or position(
                    log_, self.checkpoints.meta(self.topic, p), time.time(), self.settings.kafka_offsets_retention_s
                )
            )
            if pos.offset is None:
                self._let_go([p])
            out.append(pos)
        return out

    def _claim(self, p: int) -> int:
        epoch = self.checkpoints.claim(self.topic, p, owner=self.settings.consumer_group)
        self.store.claim(self.checkpoints.epoch_key(self.topic, p), epoch)
        return epoch

    def _partition(self, p: int) -> _Partition:
        part = self._parts.get(p)
        if part is None:
            if p not in self._epochs:  # driven without assignments (tools, tests): first use claims
                self._epochs[p] = self._claim(p)
            offset, max_event_time, windows = self.checkpoints.load(self.topic, p)
            agg = window_aggregator(self.settings)
            agg.restore(windows, max_event_time, self.checkpoints.leaders(self.topic, p))
            below, count = self.checkpoints.moved_below(self.topic, p)
            part = self._parts[p] = _Partition(
                agg, offset, offset, moved_below=below, home=Partitioner(count) if count else None
            )
        return part

    def process(self, batch: list[PartitionBatch], now: float | None = None) -> BatchOutput:
        """Refuses to run after a failed batch until reset(): the worker may have queued
        this batch behind it, and it must not apply windows on top of half a batch.

        With ``now`` (wall time), partitions quiet for ``idle_close_s`` also close the
        windows that ``now`` is past the end (plus lateness) of: see :meth:`_quiet`."""
        if self._failed:
            raise RuntimeError("an earlier batch failed; the processor needs reset() first")
        try:
            return self._process(batch, now)
        except MemoryError as err:  # decoding or windowing: never a record's fault (the engine's says so itself)
            self._failed = True
            raise EngineFailing(f"the core ran out of memory ({err!r})") from err
        except BaseException as err:
            if isinstance(err, Fenced):
                self._let_go(err.partitions)
            self._failed = True
            raise

    def _let_go(self, partitions: list[int]) -> None:
        for p in partitions:
            self._fenced.add(p)
            self._parts.pop(p, None)
            self._epochs.pop(p, None)

    def _quiet(self, now: float) -> list[int]:
        """Live partitions with no record for ``idle_close_s`` whose oldest open window ``now`` has
        passed (end plus lateness): their clock moves to ``now``, and the move is checkpointed
        like any other, so a restart does not reopen what was closed. A partition whose newest
        event is more than ``idle_close_max_lag_s`` behind ``now`` is a backfill (or paused one):
        the wall clock never closes its windows, only its own events do."""
        idle, lateness = self.settings.idle_close_s, self.settings.allowed_lateness_s
        max_lag = self.settings.idle_close_max_lag_s
        quiet = []
        if idle <= 0:
            return quiet
        for p in [p for p in self._epochs if p not in self._fenced]:  # assigned, read or not since a restart
            part = self._partition(p)
            live = now - part.windows.max_event_time <= max_lag
            if live and now - part.seen >= idle and part.windows.next_end() + lateness <= now:
                part.windows.advance_to(now)
                part.dirty = True
                quiet.append(p)
        return quiet

    def _process(self, batch: list[PartitionBatch], now: float | None = None) -> BatchOutput:
        out = BatchOutput()
        touched: list[int] = []
        for pb in batch:
            if pb.partition in self._fenced:  # let go: reading on would skip what its owner must apply
                raise Fenced([pb.partition], "batch")
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
            last = int(offsets.max())
            if part.home is not None and keys is not None and int(offsets[0]) < part.moved_below:
                away = self._moved_away(pb.partition, part, offsets, keys)
                out.outcomes["moved"] += len(away)
                keep = np.setdiff1d(np.arange(len(values)), away).tolist()
                offsets, values, keys = offsets[keep], [values[i] for i in keep], [keys[i] for i in keep]
            part.offset, part.dirty, part.seen = last, True, time.time()
            touched.append(pb.partition)
            ing = ingest_payloads(part.windows, values, self.limits, keys, withhold=self.forgotten.withhold)
            out.outcomes.update(ing.counts())
            late = EventRejected("late:window_closed", "the watermark had passed the end of its window")
            bad = ing.rejected + [(i, late) for i in ing.late_positions()]
            if keys is not None and bad:  # an erased customer's refused record is dropped, not dead-lettered
                erased = self.forgotten.withhold([(keys[i] or b"").decode(errors="replace") for i, _ in bad])
                out.outcomes["forgotten"] += int(erased.sum())
                bad = [b for b, e in zip(bad, erased) if not e]
            for i, err in bad:
                out.dead_letters.append(
                    dead_letter(
                        values[i],
                        err,
                        source_topic=self.topic,
                        source_partition=pb.partition,
                        source_offset=int(offsets[i]),
                    )
                )
        if now is not None:
            quiet = self._quiet(now)
            out.clock_moved = bool(quiet)
            touched += [p for p in quiet if p not in touched]
        polled = {p: self._withheld(self._parts[p].windows.poll()) for p in sorted(touched)}
        closed = [w for ws in polled.values() for w in ws]
        self._touched = touched
        out.windows_closed = len(closed)
        out.engine = self.pipeline.process(closed)
        if out.engine.quarantined:
            self._dead_letter_windows(out, polled)
        out.changes = out.engine.changes
        out.open_windows = sum(p.windows.open_windows for p in self._parts.values())
        out.headroom_bytes = self._headroom()
        return out

    @staticmethod
    def _moved_away(partition: int, part: _Partition, offsets: np.ndarray, keys: list[bytes | None]) -> np.ndarray:
        """Positions of records below the moved mark whose customer the topic's new partition
        count sends elsewhere: `segstream recover` added them to that partition's windows."""
        return np.fromiter(
            (
                i
                for i, (o, k) in enumerate(zip(offsets.tolist(), keys))
                if o < part.moved_below and k is not None and part.home(k) != partition
            ),
            np.int64,
        )

    def _headroom(self) -> int:
        """The most the batches that may still land (``BATCHES_AHEAD``, each of new customers, maybe
        doubling a window's array) and the next checkpoint (every dirty row, and theirs) could allocate."""
        rows = BATCHES_AHEAD * self.settings.batch_size
        parts = self._parts.values()
        grow = sum(p.windows.growth_bytes(rows) for p in parts)
        dirty = sum(p.windows.dirty_rows for p in parts)
        return grow + (dirty + rows) * self.checkpoints.ROW_TRANSIENT_BYTES

    def _withheld(self, closed: list[ClosedWindow]) -> list[ClosedWindow]:
        """Windows of customers erased while their window was open here: dropped, never applied."""
        if not closed:
            return closed
        drop = self.forgotten.withhold([w.customer_id for w in closed])
        return [w for w, d in zip(closed, drop) if not d]

    def _dead_letter_windows(self, out: BatchOutput, polled: dict[int, list[ClosedWindow]]) -> None:
        """Windows the engine failed on (a bug their data triggers, not an outage): each goes to
        the DLQ as ``engine:<error>`` with its aggregate, logged with the traceback, and the
        stream goes on; the customer's next window starts from the state before it."""
        partition_of = {(w.customer_id, w.index): p for p, ws in polled.items() for w in ws}
        for w, err in out.engine.quarantined:
            log.error("window %d of a customer failed in the engine; dead-lettered", w.index, exc_info=err)
            summary = {
                "customer_id": w.customer_id,
                "window": w.index,
                "start": w.start,
                "end": w.end,
                "events": w.n_events,
                "income": w.income,
                "spend": dict(zip(CATEGORIES, w.spend.tolist())),
            }
            reason = err.reason if isinstance(err, RecordError) else f"engine:{type(err).__name__}"
            err_ = EventRejected(reason, str(err))
            out.dead_letters.append(
                dead_letter(
                    orjson.dumps(summary),
                    err_,
                    source_topic=self.topic,
                    source_partition=partition_of[(w.customer_id, w.index)],
                )
            )

    def checkpoint(self, kafka_committed: dict[int, int] | None = None) -> None:
        """Persist what changed; call only after the batch's outputs are published.

        ``kafka_committed``: offsets Kafka took in earlier commits, recorded once per partition
        (positions.py reads them as evidence that the broker has lost its offsets).

        A partition another worker has claimed is let go and the others are still
        written; then :class:`Fenced` tells the worker which went.
        """
        self.verify_store()  # nothing is checkpointed on a Redis that may have dropped what it builds on
        self.forgotten.refresh()  # erasures since the last checkpoint take effect from here
        for p, off in (kafka_committed or {}).items():
            if p not in self._kafka_took and p in self._epochs:
                self.checkpoints.kafka_committed(self.topic, p, off)
                self._kafka_took.add(p)
        lonely = self.store.replicate()  # a cluster's states reach a replica before their checkpoint
        if lonely:
            log.warning("%d Redis Cluster master(s) found no replica for this checkpoint's states", lonely)
        fenced, saved = [], []
        for p, part in list(self._parts.items()):
            if part.dirty:
                deltas, closed = part.windows.checkpoint_delta()
                try:
                    self.checkpoints.save(
                        self.topic,
                        p,
                        part.offset,
                        part.windows.max_event_time,
                        deltas,
                        closed,
                        part.windows.window_numbers,
                        epoch=self._epochs[p],
                        leaders=part.windows.leaders,
                        saved=part.saved,
                    )
                    part.saved = part.offset
                    saved.append(p)
                except Fenced:
                    fenced.append(p)
                part.dirty = False
        if self.checkpoints.replicate(self.topic, saved):  # before Kafka's commit covers them
            log.warning("a Redis Cluster master found no replica for this checkpoint")
        if fenced:
            self._let_go(fenced)
            raise Fenced(fenced, "checkpoint")

    def verify_store(self) -> None:
        """Raise if Redis may evict, or did evict, what this deployment keeps there (state/eviction.py), or
        if its checkpoints count states of another layout (state/layout.py): checked at every checkpoint
        and assignment, and by the ingest loop every few seconds, idle too."""
        self.evictions.check()
        self.layout.check()

    def reset(self) -> None:
        """Forget all in-memory windows: after a failed batch they may hold half of it.

        The next batch restores each partition from its last checkpoint and re-reads
        what came after; the window guard makes re-applying the engine's work harmless.
        """
        self._parts.clear()
        self.store.resync()
        self._failed = False

    def revoke(self, partitions: list[int]) -> None:
        """Forget partitions another worker now owns; their checkpoint is already in Redis."""
        for p in partitions:
            self._parts.pop(p, None)
            self._epochs.pop(p, None)
            self._fenced.discard(p)

    def model_stats(self) -> tuple[str, dict[int, int], int]:
        """Model version, customers per segment and the centroid version: the worker's model gauges."""
        return self.model_version, self.store.segment_sizes(), self.store.centroid_stats().version
