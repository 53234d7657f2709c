"""Publishing events to Kafka with kafka-python: keyed by customer, rate-limited, with progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

import orjson
from kafka import KafkaProducer
from tqdm import tqdm

from segstream.config import Settings
from segstream.stream_app.kafka_config import ensure_topics, kafka_python_options

COMPRESSIONS = ("gzip", "snappy", "lz4", "zstd", "none")


def make_producer(settings: Settings, compression: str = "gzip") -> KafkaProducer:
    return KafkaProducer(
        **kafka_python_options(settings),
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
        compression_type=None if compression == "none" else compression,
        max_in_flight_requests_per_connection=1,  # keep per-customer order through retries
        retries=10,
    )


def publish(
    events: Iterable[dict],
    settings: Settings,
    *,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool | None = None,
    raw: Iterable[tuple[bytes, bytes | None]] | None = None,
    compression: str = "gzip",
) -> int:
    """Send events (or pre-encoded ``raw`` (key, value) records) to the transactions topic; returns how many.

    Every record is keyed by its customer id: the worker keeps a customer's window
    on one partition and dead-letters records keyed otherwise (``key:mismatch``).
    """
    ensure_topics(settings)
    producer = make_producer(settings, compression)
    show = sys.stderr.isatty() if progress is None else progress
    start, n = time.perf_counter(), 0
    payloads = raw if raw is not None else ((str(e["customer_id"]).encode(), orjson.dumps(e)) for e in events)
    with tqdm(total=limit, unit="ev", disable=not show, file=sys.stderr) as bar:
        for key, value in payloads:
            if not key:
                raise ValueError("refusing to publish a record without a key: key every record by its customer id")
            producer.send(settings.topic_transactions, key=key, value=value)
            n += 1
            bar.update(1)
            if rate:
                ahead = n / rate - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)
            if limit and n >= limit:
                break
    producer.flush()
    producer.close()
    return n
