"""The worker's protocol, owned by one object: process, publish, acknowledge, checkpoint.

Per batch: hand it to the core (a process of its own, or a thread), then send its
segment changes and dead letters while the broker acknowledges the previous
batch's. A window checkpoint first waits for every processed batch to be sent and
acknowledged; only then may offsets be acknowledged (by Faust in agent mode, by an
explicit commit in batch mode), and the checkpoint makes any re-delivery a no-op.

The steps of :meth:`Worker.checkpoint`, in order (after quix-streams' ``Checkpoint.commit``):

1. every batch queued in the core is processed and its outputs sent;
2. the broker has acknowledged every output sent (a refusal raises here);
3. the core writes the window checkpoints (Redis);
4. the caller may now commit the offsets those checkpoints cover.

Failures that are nobody's record's fault (Redis down, full or read-only; the broker
refusing an output batch) make the worker unhealthy, drop what the core holds in
memory (it may hold half a batch), and back off; the caller re-reads from the last
checkpoint. The core refuses work after a failed batch until it is reset, so a
batch queued behind a failed one cannot be applied on top of half of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Protocol

from aiokafka.errors import KafkaError

from segstream.config import Settings
from segstream.state.fencing import Fenced
from segstream.state.redis_client import UNAVAILABLE as REDIS_UNAVAILABLE
from segstream.state.redis_client import connect

from . import metrics
from .batch import BatchOutput, PartitionBatch

log = logging.getLogger("segstream.worker")

Highwater = Callable[[int], "int | None"]
# Nobody's record is at fault: drop what the core holds and re-read from the last checkpoint.
TRANSIENT = (*REDIS_UNAVAILABLE, KafkaError, Fenced)


class Core(Protocol):
    """The core client (``CoreRunner``): each call is queued now and returns a future."""

    in_process: bool

    def process(self, batch: list[PartitionBatch], now: float | None = None) -> asyncio.Future: ...
    def checkpoint(self) -> asyncio.Future: ...
    def reset(self) -> asyncio.Future: ...
    def assign(self, partitions: list[int]) -> asyncio.Future: ...
    def revoke(self, partitions: list[int]) -> asyncio.Future: ...
    def model_stats(self) -> asyncio.Future: ...


class Publisher(Protocol):
    async def start(self) -> None: ...
    async def send(self, messages: dict[str, list[tuple[bytes, bytes]]]) -> asyncio.Future: ...


def _no_highwater(partition: int) -> None:
    return None


class Worker:
    def __init__(
        self,
        settings: Settings,
        make_core: Callable[[Settings], Core] | None = None,
        make_publisher: Callable[[Settings], Publisher] | None = None,
    ):
        self.settings = settings
        self._make_core = make_core
        self._make_publisher = make_publisher
        self._core: Core | None = None
        self._publisher: Publisher | None = None
        self._lock = asyncio.Lock()
        self._unacked: asyncio.Future | None = None  # the last batch's outputs: sent, not yet acknowledged
        # batches handed to the core whose outputs are not yet sent, oldest first: under load the
        # core processes one while the event loop reads and hands over the next
        self._queued: list[tuple[list[PartitionBatch], asyncio.Future, Highwater]] = []
        self._delay = 0.5  # backoff after a transient failure, doubling to 10 s
        self._probe = None
        self.healthy = True

    # --- start-up -----------------------------------------------------------
    async def core(self) -> Core:
        """The core, started on first use; fails here, at start-up, if it cannot start."""
        if self._core is None:
            if self._make_core is None:
                from .core_runner import CoreRunner

                self._core = CoreRunner(self.settings)
            else:
                self._core = self._make_core(self.settings)
            version, _, _ = await self._core.model_stats()
            metrics.MODEL.info({"model_version": version})
            log.info(
                "segstream worker ready (%s ingest, core in a %s): model %s",
                self.settings.ingest,
                "process" if self._core.in_process else "thread",
                version,
            )
        return self._core

    async def publisher(self) -> Publisher:
        if self._publisher is None:
            if self._make_publisher is None:
                from .publisher import OutputPublisher

                self._publisher = OutputPublisher(self.settings)
            else:
                self._publisher = self._make_publisher(self.settings)
            await self._publisher.start()
        return self._publisher

    # --- the protocol ---------------------------------------------------------
    async def handle(
        self,
        batch: list[PartitionBatch],
        highwater: Highwater,
        *,
        checkpoint: bool = True,
        rewind: bool = False,
        ahead: bool = False,
    ) -> bool:
        """Submit a batch, publish what is processed, and (if asked) checkpoint.

        With ``ahead`` (under load) the batch's outputs are sent by the next call (an
        empty batch just sends them) or checkpoint instead, so the core works on it
        while the caller fetches the next batch. On a transient failure: when every
        batch is checkpointed it retries this batch with backoff until it goes through;
        when checkpoints are spaced out (``rewind``) it returns False and the caller
        re-reads from the last checkpoint. Nothing it held is lost or applied twice.
        """
        async with self._lock:
            core = await self.core()
            while True:
                try:
                    if batch:
                        self.submit(core, batch, highwater)
                    await self._publish_queued(keep=1 if ahead and not checkpoint else 0)
                    if checkpoint:
                        await self._checkpoint(core)
                    break
                except TRANSIENT as err:
                    await self.on_failure(core, err)
                    if rewind:
                        return False
            self._recovered()
        return True

    def submit(self, core: Core, batch: list[PartitionBatch], highwater: Highwater) -> None:
        """Queue a batch in the core behind the batch before it."""
        self._queued.append((batch, core.process(batch), highwater))

    async def publish(self, batch: list[PartitionBatch], out: BatchOutput, highwater: Highwater) -> None:
        """Send a processed batch's outputs once the previous batch's are acknowledged; report it."""
        await self._acked()
        s = self.settings
        self._unacked = await (await self.publisher()).send(
            {
                s.topic_changes: [(ch.customer_id.encode(), ch.model_dump_json().encode()) for ch in out.changes],
                s.topic_dlq: [(d.reason.encode(), d.model_dump_json().encode()) for d in out.dead_letters],
            }
        )
        self._unacked.add_done_callback(lambda f: f.exception() or metrics.observe_published(batch, out))
        metrics.observe_batch(batch, out)
        metrics.OPEN_WINDOWS.set(out.open_windows)
        for pb in batch:
            hw = highwater(pb.partition)
            if hw is not None:
                metrics.LAG.labels(str(pb.partition)).set(max(hw - pb.offsets[-1] - 1, 0))

    async def close_quiet(self, now: float) -> bool:
        """Close the windows of quiet partitions that ``now`` (wall time) is past, publish what
        they announce and checkpoint; False if that failed (re-read from the last checkpoint)."""
        async with self._lock:
            core = await self.core()
            self._queued.append(([], core.process([], now), _no_highwater))
            return await self._checkpoint_held()

    async def checkpoint(self) -> bool:
        """Write every partition's pending checkpoint now; False if that failed (re-read from the last one)."""
        async with self._lock:
            return await self._checkpoint_held()

    async def revoke(self, partitions: list[int]) -> bool:
        """Checkpoint what the worker holds, then let the partitions go; False if the checkpoint failed."""
        async with self._lock:
            ok = await self._checkpoint_held()
            if self._core is not None:
                await self._core.revoke(partitions)
        return ok

    async def assign(self, partitions: list[int]) -> None:
        """Claim newly assigned partitions, fencing out whoever held them before."""
        async with self._lock:
            core = await self.core()
            try:
                await core.assign(partitions)
            except REDIS_UNAVAILABLE as err:  # each is claimed on its first batch instead
                metrics.REDIS_ERRORS.labels("claim").inc()
                log.warning("claiming partitions %s failed (%s); claiming them on first use", partitions, err)

    async def on_failure(self, core: Core, err: Exception) -> None:
        """Report, forget the in-memory windows (they may hold half a batch) and, after an
        outage, back off; a fence is not an outage: there is nothing to wait for."""
        outage = not isinstance(err, Fenced)
        if not outage:
            metrics.FENCED.labels(err.where).inc(len(err.partitions))
            log.warning("%s: letting them go and re-reading the rest from the last checkpoint", err)
        elif isinstance(err, KafkaError):
            metrics.PUBLISH_ERRORS.inc()
            log.warning(
                "the broker refused an output batch (%s); back to the last checkpoint in %.1fs", err, self._delay
            )
        else:
            metrics.REDIS_ERRORS.labels("batch").inc()
            log.warning("Redis unavailable (%s); back to the last checkpoint in %.1fs", err, self._delay)
        if outage:
            self.healthy = False
        await self._drop_queued()
        await core.reset()
        if outage:
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, 10.0)

    async def model_stats(self) -> Any:
        return None if self._core is None else await self._core.model_stats()

    def redis_up(self) -> bool:
        """A quick ping on a connection without retries: a health check must answer quickly."""
        if self._probe is None:
            self._probe = connect(
                self.settings.redis_url, retries=0, timeout_s=1.0, cluster=self.settings.redis_cluster
            )
        try:
            return bool(self._probe.ping())
        except Exception:  # noqa: BLE001 - unhealthy is an answer, not a crash
            return False

    # --- steps ------------------------------------------------------------------
    def _recovered(self) -> None:
        self.healthy, self._delay = True, 0.5

    async def _acked(self) -> None:
        """Wait until the broker has the last batch's outputs (raises if it refused them)."""
        if self._unacked is not None:
            fut, self._unacked = self._unacked, None
            with metrics.WORKER_SECONDS.labels("ack_wait").time():
                await fut

    async def _publish_queued(self, keep: int = 0) -> None:
        """Publish the queued batches' outputs, in order, all but the last ``keep``."""
        while len(self._queued) > keep:
            batch, processing, highwater = self._queued.pop(0)
            with metrics.WORKER_SECONDS.labels("process").time():
                out = await processing
            await self.publish(batch, out, highwater)

    async def _drop_queued(self) -> None:
        """After a failure the queued batches' results are void: the core refuses work until reset."""
        while self._queued:
            with suppress(Exception):
                await self._queued.pop(0)[1]

    async def _checkpoint(self, core: Core) -> None:
        """Steps 1-3 of the docstring: publish everything processed, await every ack, write the checkpoint."""
        await self._publish_queued()
        await self._acked()
        with metrics.WORKER_SECONDS.labels("checkpoint").time():
            await core.checkpoint()

    async def _checkpoint_held(self) -> bool:
        """Checkpoint with the lock held; a success also ends an unhealthy spell (an idle worker
        has no next batch to prove it)."""
        if self._core is None:
            return True
        try:
            await self._checkpoint(self._core)
        except TRANSIENT as err:
            await self.on_failure(self._core, err)
            return False
        self._recovered()
        return True
