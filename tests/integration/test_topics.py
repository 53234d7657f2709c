"""The topics segstream creates, on the real broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer

from segstream.producers.kafka_producer import publish

from .harness import isolated_settings, segstream_cli, settings_from

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


def test_topics_are_made_from_the_settings_and_differences_are_named(bootstrap, redis_url):
    """Issue 29: a subscription auto-created the transactions topic with 7-day retention and the
    producer's timestamps; now the topics come from the settings, and a topic made otherwise is named."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from segstream.stream_app.kafka_config import ensure_topics

    s = settings_from(isolated_settings(bootstrap, redis_url))
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:  # made by someone else, with the broker's defaults
        admin.create_topics([NewTopic(s.topic_transactions, 2, 1)])
    finally:
        admin.close()
    differences = ensure_topics(s)
    assert any("2 partitions, settings say 4" in d for d in differences)
    assert any("retention.ms is 604800000" in d for d in differences)
    assert any("message.timestamp.type is CreateTime" in d for d in differences)
    assert not [d for d in differences if d.startswith(s.topic_changes)]  # the ones it made agree
    assert ensure_topics(s) == differences  # idempotent


def test_a_topic_set_to_lose_records_stops_the_worker_with_one_line(bootstrap, redis_url):
    """A compacted transactions topic keeps only each customer's latest transaction, read or not,
    and an erasures topic with retention forgets erasures (a rebuild would bring those customers
    back): before, the worker logged them as differences and ran; now it does not start."""
    from kafka.admin import KafkaAdminClient, NewTopic

    env = isolated_settings(bootstrap, redis_url)
    s = settings_from(env)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(s.topic_transactions, 4, 1, topic_configs={"cleanup.policy": "compact"}),
                NewTopic(
                    s.erasures_topic, 1, 1, topic_configs={"cleanup.policy": "delete", "retention.ms": "86400000"}
                ),
            ]
        )
    finally:
        admin.close()
    out = segstream_cli(env, "worker", timeout=120)
    err = out.stderr.decode()
    assert out.returncode == 1, err[-2000:]
    assert "compaction deletes transactions before they are read" in err
    assert "erasures would be deleted" in err and "retention.ms 86400000" in err
