"""The Faust worker, declared: the transactions topic, one way in, a timer and the operator pages.

The protocol (process, publish, acknowledge, checkpoint, back off) lives in
:class:`stream_app.worker.Worker`; this module only wires it to Faust.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust
from prometheus_client import generate_latest

from segstream.config import get_settings
from segstream.gc_tuning import tune_gc

from . import metrics
from .batch import batch_of
from .kafka_config import faust_credentials
from .worker import Worker

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
    broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
    broker_heartbeat_interval=settings.kafka_session_timeout_ms / 3000,
    web_port=settings.web_port,
    web_host=settings.web_host,
    # operators need /metrics and /healthz; Faust's router, table, graph and stats pages
    # would show partition assignments and table contents to anyone who can connect
    web_router_enabled=False,
    web_tables_enabled=False,
    web_graph_enabled=False,
    web_stats_enabled=False,
    web_metrics_enabled=False,
    datadir=str(settings.data_dir),
)

transactions = app.topic(settings.topic_transactions, key_type=bytes, value_type=bytes)
worker = Worker(settings)

if settings.ingest == "agent":

    @app.agent(transactions)
    async def segment(stream):
        def highwater(p: int) -> int | None:
            return app.consumer.highwater(faust.types.TP(settings.topic_transactions, p))

        async for events in stream.take_events(settings.batch_size, within=settings.batch_timeout_s):
            await worker.handle(
                batch_of((e.message.partition, e.message.offset, e.value, e.message.timestamp, e.key) for e in events),
                highwater,
            )

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **kwargs) -> None:
        await worker.revoke([tp.partition for tp in revoked if tp.topic == settings.topic_transactions])

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **kwargs) -> None:
        await worker.assign([tp.partition for tp in assigned if tp.topic == settings.topic_transactions])

    @app.timer(interval=2.0)
    async def close_quiet() -> None:
        """Every batch is checkpointed in agent mode, so this may run between any two."""
        if settings.idle_close_s > 0:
            await worker.close_quiet(time.time())

else:

    @app.task
    async def segment_batches() -> None:
        from .batch_ingest import consume

        await consume(settings, worker.handle, worker.checkpoint, worker.revoke, worker.assign, worker.close_quiet)


@app.timer(interval=5.0)
async def model_gauges() -> None:
    try:
        stats = await worker.model_stats()
    except Exception:
        metrics.REDIS_ERRORS.labels("gauges").inc()
        log.exception("reading segment sizes from Redis failed")
        return
    if stats is not None:
        _, sizes, centroid_version = stats
        metrics.observe_model(sizes, centroid_version)


@app.page("/metrics")
async def prometheus(web, request):
    return web.bytes(generate_latest(), content_type="text/plain; version=0.0.4")


@app.page("/healthz")
async def health(web, request):
    redis_ok = await asyncio.get_running_loop().run_in_executor(None, worker.redis_up)
    ok = worker.healthy and redis_ok
    return web.json({"ok": ok, "redis": redis_ok, "processing": worker.healthy}, status=200 if ok else 503)


@app.task
async def on_start() -> None:
    from .kafka_config import ensure_topics

    await asyncio.get_running_loop().run_in_executor(None, ensure_topics, settings)
    await worker.core()
    tune_gc(settings.gc_threshold)
