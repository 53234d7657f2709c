"""The worker's side of the core: process, publish, acknowledge, write checkpoints.

Per batch the core (a process of its own, or a thread) processes it while the
previous batch's segment changes and dead letters are sent and the broker
acknowledges them. :meth:`Worker.checkpoint` is steps 1-3 of a commit (the ingest
loop's :class:`~stream_app.checkpoint.Checkpoint` runs step 4):

1. every batch queued in the core is processed and its outputs sent;
2. the broker has acknowledged every output sent (a refusal raises here);
3. the core writes the window checkpoints (Redis).

Every method raises on a failure; :meth:`on_failure` then drops what the core holds
in memory (it may hold half a batch) and backs off, and the caller re-reads from the
last checkpoint. The core refuses work after a failed batch until it is reset, so a
batch queued behind a failed one is never applied on top of half of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Protocol

from aiokafka.errors import KafkaError

from segstream.config import Settings
from segstream.errors import EngineFailing, StoreCorrupt, StoreRolledBack, SystemFailure
from segstream.state.fencing import Fenced

from . import metrics
from .batch import BatchOutput, PartitionBatch
from .health import Health
from .positions import LogBounds, Position

log = logging.getLogger("segstream.worker")

Highwater = Callable[[int], "int | None"]


class Core(Protocol):
    """The core client (``CoreRunner``): each call is queued now and returns a future."""

    in_process: bool

    def process(self, batch: list[PartitionBatch], now: float | None = None) -> asyncio.Future: ...
    def checkpoint(self, kafka_committed: dict[int, int]) -> asyncio.Future: ...
    def reset(self) -> asyncio.Future: ...
    def assign(self, logs: list[LogBounds]) -> asyncio.Future: ...
    def revoke(self, partitions: list[int]) -> asyncio.Future: ...
    def model_stats(self) -> asyncio.Future: ...
    def memory_bytes(self) -> int: ...


class Publisher(Protocol):
    async def start(self) -> None: ...
    async def send(self, messages: dict[str, list[tuple[bytes, bytes]]]) -> asyncio.Future: ...


def _no_highwater(partition: int) -> None:
    return None


class Worker:
    def __init__(self, settings: Settings, core: Core, publisher: Publisher, health: Health):
        self.settings = settings
        self.core = core
        self.publisher = publisher
        self.health = health
        self.lock = asyncio.Lock()  # the loop and the rebalance callbacks take turns
        self._unacked: asyncio.Future | None = None  # the last batch's outputs: sent, not yet acknowledged
        # batches handed to the core whose outputs are not yet sent, oldest first: the core
        # processes the newest while the event loop sends the others and fetches the next
        self._queued: list[tuple[list[PartitionBatch], asyncio.Future, Highwater]] = []
        self._delay = 0.5  # backoff after an outage, doubling to 10 s
        self.open_windows = 0  # in the core, after the last batch it processed
        self.headroom_bytes = 0  # what the core's next batch and checkpoint could allocate at most

    async def start(self) -> None:
        """Start the core and the publisher; fails here, at start-up, if either cannot start."""
        version, _, _ = await self.core.model_stats()
        await self.publisher.start()
        metrics.MODEL.info({"model_version": version})
        log.info(
            "segstream worker ready (core in a %s): model %s", "process" if self.core.in_process else "thread", version
        )

    # --- the protocol (call with the lock held) -------------------------------------
    async def process(self, batch: list[PartitionBatch], highwater: Highwater) -> None:
        """Queue the batch in the core; send the outputs of the batches before it."""
        self._queued.append((batch, self.core.process(batch), highwater))
        await self._publish_queued(keep=1)

    async def flush(self) -> None:
        """Send every queued batch's outputs (an empty poll: nothing to overlap with)."""
        await self._publish_queued()

    async def close_quiet(self, now: float) -> bool:
        """Close the windows of quiet live partitions that ``now`` (wall time) has passed and send
        what they announce; True if any closed (a checkpoint is then due even without new offsets)."""
        fut = self.core.process([], now)
        self._queued.append(([], fut, _no_highwater))
        await self._publish_queued()
        return fut.result().clock_moved

    async def checkpoint(self, kafka_committed: dict[int, int]) -> None:
        """Steps 1-3 of the module docstring."""
        await self._publish_queued()  # 1
        await self._acked()  # 2
        with metrics.WORKER_SECONDS.labels("checkpoint").time():
            await self.core.checkpoint(kafka_committed)  # 3
        self._recovered()

    async def assign(self, logs: list[LogBounds]) -> list[Position]:
        """Claim the partitions and say where each resumes (or why it must not)."""
        return await self.core.assign(logs)

    async def verify_store(self) -> None:
        """Raises a SystemFailure if Redis may lose, or lost, what the deployment keeps there."""
        await self.core.verify_store()

    async def revoke(self, partitions: list[int]) -> None:
        await self.core.revoke(partitions)

    async def discard(self) -> None:
        """Forget the batches queued in the core: they will be read again."""
        await self._drop_queued()

    async def on_failure(self, err: BaseException) -> None:
        """Report, forget the in-memory windows (they may hold half a batch) and, after an
        outage (Redis, the broker, a core that cannot apply a batch), back off; a fence or a halt
        is not an outage: there is nothing to wait for."""
        await self._drop_queued()
        with suppress(SystemFailure):
            await self.core.reset()
        if isinstance(err, Fenced):
            metrics.FENCED.labels(err.where).inc(len(err.partitions))
            log.warning("%s: re-reading from the last checkpoint", err)
            return
        if isinstance(err, StoreRolledBack):
            metrics.STORE_ROLLBACKS.inc()
            log.warning("%s", err)
            return
        if isinstance(err, EngineFailing | StoreCorrupt):
            metrics.CORE_FAILURES.labels(err.reason).inc()
            what = f"{err.reason}: {err}"
            self.health.set("core", what)
        elif isinstance(err, SystemFailure):
            return  # the loop halts the partitions and says why
        elif isinstance(err, KafkaError):
            metrics.PUBLISH_ERRORS.inc()
            what = f"the broker refused an output batch ({err})"
            self.health.set("broker", what)
        else:
            metrics.REDIS_ERRORS.labels("batch").inc()
            what = f"Redis unavailable ({err})"
            self.health.set("redis", what)
        log.warning("%s; back to the last checkpoint in %.1fs", what, self._delay)
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, 10.0)

    async def model_stats(self) -> Any:
        return await self.core.model_stats()

    # --- steps ------------------------------------------------------------------
    def _recovered(self) -> None:
        self.health.clear("redis")
        self.health.clear("broker")
        self.health.clear("core")
        self._delay = 0.5

    async def _publish(self, batch: list[PartitionBatch], out: BatchOutput, highwater: Highwater) -> None:
        """Send a processed batch's outputs once the previous batch's are acknowledged; report it."""
        await self._acked()
        s = self.settings
        self._unacked = await self.publisher.send(
            {
                s.topic_changes: [(ch.customer_id.encode(), ch.model_dump_json().encode()) for ch in out.changes],
                s.topic_dlq: [(d.reason.encode(), d.model_dump_json().encode()) for d in out.dead_letters],
            }
        )
        self._unacked.add_done_callback(lambda f: f.exception() or metrics.observe_published(batch, out))
        metrics.observe_batch(batch, out)
        metrics.OPEN_WINDOWS.set(out.open_windows)
        self.open_windows = out.open_windows
        self.headroom_bytes = out.headroom_bytes
        for pb in batch:
            hw = highwater(pb.partition)
            if hw is not None:
                metrics.LAG.labels(str(pb.partition)).set(max(hw - pb.offsets[-1] - 1, 0))

    async def _acked(self) -> None:
        """Wait until the broker has the last batch's outputs (raises if it refused them)."""
        if self._unacked is not None:
            fut, self._unacked = self._unacked, None
            with metrics.WORKER_SECONDS.labels("ack_wait").time():
                await fut

    async def _publish_queued(self, keep: int = 0) -> None:
        """Publish the queued batches' outputs, in order, all but the last ``keep``."""
        while len(self._queued) > keep:
            batch, processing, highwater = self._queued[0]
            with metrics.WORKER_SECONDS.labels("process").time():
                out = await processing
            self._queued.pop(0)
            await self._publish(batch, out, highwater)

    async def _drop_queued(self) -> None:
        """After a failure the queued batches' results are void: the core refuses work until reset."""
        while self._queued:
            with suppress(BaseException):
                await self._queued.pop(0)[1]
        if self._unacked is not None:  # sent or not, the re-read sends it again
            self._unacked.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._unacked = None
