"""The topics segstream creates, on the real broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer

from segstream.producers.kafka_producer import publish

from .harness import isolated_settings, settings_from

pytestmark = pytest.mark.integration

LOG_APPEND_TIME = 1  # kafka-python's timestamp_type for the broker's stamp


def test_transactions_carry_the_brokers_append_time(bootstrap, redis_url):
    """The end-to-end latency counts from a record's timestamp: on the transactions topic it is
    the broker's append time, not the producer's (an event's own time is in its payload)."""
    s = settings_from(isolated_settings(bootstrap, redis_url))
    before = time.time()
    event = {
        "event_id": "e1",
        "customer_id": "C0000001",
        "timestamp": "2001-02-03T04:05:06+00:00",
        "amount": 1.0,
        "currency": "EUR",
        "category": "groceries",
    }
    assert publish([event], s, progress=False) == 1
    consumer = KafkaConsumer(
        s.topic_transactions, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10_000
    )
    try:
        msg = next(iter(consumer))
    finally:
        consumer.close()
    assert msg.timestamp_type == LOG_APPEND_TIME
    assert msg.timestamp / 1000 >= before - 1  # the broker's clock now, not the event's 2001
