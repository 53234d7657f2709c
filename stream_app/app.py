"""The Faust worker, declared: three topics, one way in, a metrics page.

Per batch: hand it to the core (a process of its own, or a thread), then send its
segment changes and dead letters while the broker acknowledges the previous
batch's. A window checkpoint first waits for every processed batch to be sent and
acknowledged; only then are offsets acknowledged (by Faust in agent mode, by an
explicit commit in batch mode), and the checkpoint makes any re-delivery a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Callable

import faust
from aiokafka.errors import KafkaError
from prometheus_client import generate_latest

from segstream.config import get_settings
from segstream.gc_tuning import tune_gc

from . import metrics
from .kafka_config import faust_credentials
from state.redis_client import UNAVAILABLE as REDIS_UNAVAILABLE
from state.redis_client import connect

from .batch import BatchOutput, PartitionBatch, batch_of
from .core_runner import CoreRunner
from .publisher import OutputPublisher

log = logging.getLogger("segstream.worker")
settings = get_settings()

app = faust.App(
    # In batch mode the ingest consumer owns the configured group; Faust's own
    # consumer (which then reads nothing) must not join it with another protocol.
    settings.consumer_group if settings.ingest == "agent" else f"{settings.consumer_group}-faust",
    broker=f"kafka://{settings.kafka_bootstrap}",
    broker_credentials=faust_credentials(settings),
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",
    topic_partitions=settings.topic_partitions,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    web_port=settings.web_port,
    web_host="0.0.0.0",
    datadir=str(settings.data_dir),
)

transactions = app.topic(settings.topic_transactions, key_type=bytes, value_type=bytes)

_lock = asyncio.Lock()
_core: CoreRunner | None = None


async def core() -> CoreRunner:
    """The core, started on first use (in its own process unless SEGSTREAM_CORE_PROCESS=false)."""
    global _core
    if _core is None:
        _core = CoreRunner(settings)
        version, _, _ = await _core("model_stats")  # fails here, at start-up, if the core cannot start
        metrics.MODEL.info({"model_version": version})
        log.info("segstream worker ready (%s ingest, core in a %s): model %s", settings.ingest,
                 "process" if _core.in_process else "thread", version)
    return _core


_publisher: OutputPublisher | None = None


async def publisher() -> OutputPublisher:
    global _publisher
    if _publisher is None:
        _publisher = OutputPublisher(settings)
        await _publisher.start()
    return _publisher


_healthy = True


_unacked: asyncio.Future | None = None  # the last batch's outputs: sent, not yet acknowledged


async def _acked() -> None:
    """Wait until the broker has the last batch's outputs (raises if it refused them)."""
    global _unacked
    if _unacked is not None:
        fut, _unacked = _unacked, None
        with metrics.WORKER_SECONDS.labels("ack_wait").time():
            await fut


async def _publish(batch: list[PartitionBatch], out: BatchOutput, highwater: Callable[[int], int | None]) -> None:
    """Send a processed batch's outputs once the previous batch's are acknowledged; report it."""
    global _unacked
    await _acked()
    _unacked = await (await publisher()).send({
        settings.topic_changes: [(ch.customer_id.encode(), ch.model_dump_json().encode()) for ch in out.changes],
        settings.topic_dlq: [(d.reason.encode(), d.model_dump_json().encode()) for d in out.dead_letters],
    })
    _unacked.add_done_callback(lambda f: f.exception() or metrics.observe_published(batch, out))
    metrics.observe_batch(batch, out)
    metrics.OPEN_WINDOWS.set(out.open_windows)
    for pb in batch:
        hw = highwater(pb.partition)
        if hw is not None:
            metrics.LAG.labels(str(pb.partition)).set(max(hw - pb.offsets[-1] - 1, 0))


# Batches handed to the core whose outputs are not yet sent, oldest first: under load
# the core processes one while the event loop reads and hands over the next.
_queued: list[tuple[list[PartitionBatch], asyncio.Future, Callable[[int], int | None]]] = []


async def _complete_queued(keep: int = 0) -> None:
    """Publish the queued batches' outputs, in order, all but the last ``keep``."""
    while len(_queued) > keep:
        batch, processing, highwater = _queued.pop(0)
        with metrics.WORKER_SECONDS.labels("process").time():
            out = await processing
        await _publish(batch, out, highwater)


async def _drop_queued() -> None:
    """After a failure the queued batches' results are void: the core refuses work until reset."""
    while _queued:
        with suppress(Exception):
            await _queued.pop(0)[1]


async def _checkpoint_now(run: CoreRunner) -> None:
    """Every processed batch published and acknowledged, then the window checkpoint."""
    await _complete_queued()
    await _acked()
    with metrics.WORKER_SECONDS.labels("checkpoint").time():
        await run("checkpoint")


_delay = 0.5  # backoff while Redis is unavailable or the broker refuses our outputs

# Failures that are nobody's record's fault: retried from the last checkpoint with backoff.
# A broker refusing an output batch (KafkaError on its ack) means those segment changes
# or dead letters are not delivered, so the batch must not be checkpointed: the worker
# re-reads it, and the state guard makes the re-read apply nothing twice.
_TRANSIENT = (*REDIS_UNAVAILABLE, KafkaError)


async def _redis_failed(run: CoreRunner, err: Exception) -> None:
    """Report, forget the in-memory windows (they may hold half a batch) and back off."""
    global _healthy, _delay
    _healthy = False
    if isinstance(err, KafkaError):
        metrics.PUBLISH_ERRORS.inc()
        log.warning("the broker refused an output batch (%s); back to the last checkpoint in %.1fs", err, _delay)
    else:
        metrics.REDIS_ERRORS.labels("batch").inc()
        log.warning("Redis unavailable (%s); back to the last checkpoint in %.1fs", err, _delay)
    await _drop_queued()
    await run("reset")
    await asyncio.sleep(_delay)
    _delay = min(_delay * 2, 10.0)


async def handle(batch: list[PartitionBatch], highwater: Callable[[int], int | None], *,
                 checkpoint: bool = True, rewind: bool = False, ahead: bool = False) -> bool:
    """One batch through the core, its outputs published, then (if asked) its checkpoint written.

    With ``ahead`` (under load) the batch's outputs are sent by the next call (an
    empty batch just sends them) or checkpoint instead, so the core works on it
    while the caller fetches the next batch. A checkpoint first publishes every
    processed batch and waits for the broker's acks, so it never covers an output
    the broker does not have.

    If Redis fails (after redis-py's own retries), the worker reports unhealthy and
    forgets its in-memory windows. When every batch is checkpointed it retries this
    batch with backoff until Redis is back; when checkpoints are spaced out
    (``rewind``), it returns False and the caller re-reads from the last checkpoint.
    Either way nothing it held is lost, and nothing is applied twice.
    """
    global _healthy, _delay
    async with _lock:
        run = await core()
        while True:
            try:
                if batch:  # queued in the core behind the batch before it
                    _queued.append((batch, run("process", batch), highwater))
                await _complete_queued(keep=1 if ahead and not checkpoint else 0)
                if checkpoint:
                    await _checkpoint_now(run)
                break
            except _TRANSIENT as err:
                await _redis_failed(run, err)
                if rewind:
                    return False
        _healthy, _delay = True, 0.5
    return True


async def _checkpoint_held() -> bool:
    """Write every partition's pending checkpoint; the caller holds the lock."""
    if _core is None:
        return True
    try:
        await _checkpoint_now(_core)
        return True
    except _TRANSIENT as err:
        await _redis_failed(_core, err)
        return False


async def checkpoint() -> bool:
    """Write every partition's pending checkpoint now; False if Redis failed (re-read from the last one)."""
    async with _lock:
        return await _checkpoint_held()


async def revoke(partitions: list[int]) -> bool:
    """Checkpoint what the worker holds, then let the partitions go; False if the checkpoint failed."""
    async with _lock:
        ok = await _checkpoint_held()
        if _core is not None:
            await _core("revoke", partitions)
    return ok


if settings.ingest == "agent":

    @app.agent(transactions)
    async def segment(stream):
        def highwater(p: int) -> int | None:
            return app.consumer.highwater(faust.types.TP(settings.topic_transactions, p))

        async for events in stream.take_events(settings.batch_size, within=settings.batch_timeout_s):
            await handle(batch_of((e.message.partition, e.message.offset, e.value, e.message.timestamp, e.key)
                                  for e in events), highwater)

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **kwargs) -> None:
        await revoke([tp.partition for tp in revoked if tp.topic == settings.topic_transactions])

else:

    @app.task
    async def segment_batches() -> None:
        from .batch_ingest import consume

        await consume(settings, handle, checkpoint, revoke)


@app.timer(interval=5.0)
async def model_gauges() -> None:
    if _core is None:
        return
    try:
        _, sizes, centroid_version = await _core("model_stats")
    except Exception:
        metrics.REDIS_ERRORS.labels("gauges").inc()
        log.exception("reading segment sizes from Redis failed")
        return
    metrics.observe_model(sizes, centroid_version)


@app.page("/metrics")
async def prometheus(web, request):
    return web.bytes(generate_latest(), content_type="text/plain; version=0.0.4")


_probe = None


def _redis_up() -> bool:
    global _probe
    if _probe is None:  # no retries: a health check must answer quickly
        _probe = connect(settings.redis_url, retries=0, timeout_s=1.0)
    try:
        return bool(_probe.ping())
    except Exception:  # unhealthy is an answer, not a crash
        return False


@app.page("/healthz")
async def health(web, request):
    redis_ok = await asyncio.get_running_loop().run_in_executor(None, _redis_up)
    ok = _healthy and redis_ok
    return web.json({"ok": ok, "redis": redis_ok, "processing": _healthy}, status=200 if ok else 503)


@app.task
async def on_start() -> None:
    from .kafka_config import ensure_topics

    await asyncio.get_running_loop().run_in_executor(None, ensure_topics, settings)
    await core()
    tune_gc(settings.gc_threshold)
