"""Publishing events to Kafka with kafka-python: keyed by customer, rate-limited, with progress."""

from __future__ import annotations

import sys
import time
from typing import Iterable

import orjson
from kafka import KafkaProducer
from tqdm import tqdm

from segstream.config import Settings
from stream_app.kafka_config import ensure_topics, kafka_python_options


def make_producer(settings: Settings) -> KafkaProducer:
    return KafkaProducer(
        **kafka_python_options(settings),
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
        compression_type="gzip",
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
    raw: Iterable[bytes] | None = None,
) -> int:
    """Send events (or pre-encoded ``raw`` payloads) to the transactions topic; returns how many."""
    ensure_topics(settings)
    producer = make_producer(settings)
    show = sys.stderr.isatty() if progress is None else progress
    start, n = time.perf_counter(), 0
    payloads = raw if raw is not None else ((str(e["customer_id"]).encode(), orjson.dumps(e)) for e in events)
    with tqdm(total=limit, unit="ev", disable=not show, file=sys.stderr) as bar:
        for item in payloads:
            key, value = item if isinstance(item, tuple) else (None, item)
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
