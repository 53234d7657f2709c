"""The Faust app that hosts the worker: its ingest loop as a task, a timer and the operator pages.

Built by :func:`build_app` from one settings object; nothing happens at import time. The
protocol lives in stream_app/ingest.py (the loop), checkpoint.py (a commit's steps) and
worker.py (the core's side); this module only wires them to Faust.
"""

from __future__ import annotations

import asyncio
import logging

import faust
from aiokafka import AIOKafkaConsumer
from prometheus_client import generate_latest

from segstream.config import Settings
from segstream.gc_tuning import tune_gc
from segstream.state.redis_client import client_for

from . import erasure_log, metrics
from .core_runner import CoreRunner
from .health import Health, RepeatFilter, broker_up
from .ingest import IngestLoop
from .kafka_config import aiokafka_options, ensure_topics, faust_credentials
from .publisher import OutputPublisher
from .worker import Worker

log = logging.getLogger("segstream.worker")


def make_consumer(s: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **aiokafka_options(s),
        group_id=s.consumer_group,
        session_timeout_ms=s.kafka_session_timeout_ms,
        heartbeat_interval_ms=s.kafka_session_timeout_ms // 3,
        metadata_max_age_ms=s.kafka_metadata_max_age_ms,
        enable_auto_commit=False,
        # never "earliest": a position the log no longer holds would jump to its start and skip
        # the records in between; every position comes from a checkpoint (ingest.py)
        auto_offset_reset="none",
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=16 << 20,
    )


class RedisProbe:
    """A ping on a connection without retries: a health check must answer quickly."""

    def __init__(self, s: Settings):
        self.settings = s
        self._client = None

    def __call__(self) -> bool:
        if self._client is None:
            self._client = client_for(self.settings, retries=0, timeout_s=1.0)
        try:
            return bool(self._client.ping())
        except Exception:  # noqa: BLE001 - unhealthy is an answer, not a crash
            return False


def build_app(settings: Settings) -> faust.App:
    app = faust.App(
        # the ingest loop's consumer owns the configured group; Faust's own consumer (which
        # reads nothing) must not join it with another protocol
        f"{settings.consumer_group}-faust",
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topic_partitions,
        producer_acks=-1,
        web_port=settings.web_port,
        web_host=settings.web_host,
        web_bind=settings.web_host,  # web_host only names the address in URLs; web_bind is where it listens
        # operators need /metrics and /healthz; Faust's router, table, graph and stats pages
        # would show partition assignments and table contents to anyone who can connect
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        datadir=str(settings.data_dir),
    )
    health = Health()
    core = CoreRunner(settings)
    worker = Worker(settings, core, OutputPublisher(settings), health)
    loop = IngestLoop(settings, worker, make_consumer, health)
    redis_up = RedisProbe(settings)
    repeats = RepeatFilter()

    @app.task
    async def ingest() -> None:
        for handler in logging.getLogger().handlers:  # Faust has set logging up by now
            handler.addFilter(repeats)
        # topics first: a subscription to a missing topic would auto-create it without our configs
        await asyncio.get_running_loop().run_in_executor(None, ensure_topics, settings)
        # erasures before any event: a Redis restored from an older snapshot would not know the later ones
        while True:
            try:
                replayed = await asyncio.get_running_loop().run_in_executor(None, erasure_log.replay_into, settings)
                break
            except Exception as err:  # noqa: BLE001 - Redis or the broker not up yet: nothing is read before this
                log.warning("erasures not read back yet (%s); retrying in 5 s", err)
                await asyncio.sleep(5.0)
        if replayed.restored:
            log.warning(
                "%d erasures were missing from Redis; read back from %s", replayed.restored, settings.erasures_topic
            )
        tune_gc(settings.gc_threshold)
        await loop.run()

    @app.timer(interval=5.0)
    async def model_gauges() -> None:
        metrics.CORE_MEMORY.set(core.memory_bytes())
        try:
            _, sizes, centroid_version = await worker.model_stats()
        except Exception as err:  # noqa: BLE001 - a gauge must not stop the worker
            metrics.REDIS_ERRORS.labels("gauges").inc()
            log.warning("reading segment sizes from Redis failed: %s", err)
            return
        metrics.observe_model(sizes, centroid_version)

    @app.page("/metrics")
    async def prometheus(web, request):
        return web.bytes(generate_latest(), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web, request):
        redis_ok = await asyncio.get_running_loop().run_in_executor(None, redis_up)
        ok, body = health.report(redis_ok, await broker_up(loop.consumer))
        return web.json(body, status=200 if ok else 503)

    @app.page("/readyz")
    async def readyz(web, request):
        """Healthy and caught up: every partition within one batch of its high-water mark."""
        redis_ok = await asyncio.get_running_loop().run_in_executor(None, redis_up)
        ok, body = health.report(redis_ok, await broker_up(loop.consumer))
        behind = sum(s.value for m in metrics.LAG.collect() for s in m.samples)
        body["lag"] = behind
        ready = ok and behind <= settings.batch_size
        return web.json(body, status=200 if ready else 503)

    return app
