"""Erasures outlive the state store: each one is also a record on a compacted Kafka topic.

The set of erased customers lives in Redis (state/forgotten.py), where every worker reads it.
A Redis that restarts empty, or is restored from a snapshot older than an erasure, would
forget it, and the replay that rebuilds the states (the transactions topic keeps 400 days)
would bring the customer back. So ``segstream forget`` also writes the customer's digest,
never the id, to the erasures topic (compacted, no retention), and new consent a tombstone
for it; ``segstream recover`` and every worker at start read the topic back into Redis
before any event is applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from segstream.config import Settings
from segstream.state.forgotten import ForgottenCustomers

from .kafka_config import kafka_python_options


def entry(digest: bytes, erased: bool, at: float) -> tuple[bytes, bytes | None]:
    """The log's record for one erasure, or (``erased`` False) a tombstone for new consent."""
    return digest.hex().encode(), orjson.dumps({"erased_at": at}) if erased else None


@dataclass
class Replayed:
    erased: int  # digests the log holds as erased
    restored: int  # of those, missing from Redis until now (a purge is then pending)
    consented: int  # digests whose latest record is new consent


def replay(s: Settings, forgotten: ForgottenCustomers) -> Replayed:
    """Read the whole log (small: one record per erased customer) and make Redis agree with it."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka_python_options(s), enable_auto_commit=False)
    latest: dict[bytes, bool] = {}
    try:
        tps = [
            TopicPartition(s.erasures_topic, p) for p in sorted(consumer.partitions_for_topic(s.erasures_topic) or [])
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    latest[bytes.fromhex(r.key.decode())] = r.value is not None
    finally:
        consumer.close()
    erased = {d for d, e in latest.items() if e}
    consented = set(latest) - erased
    return Replayed(len(erased), forgotten.restore(erased, consented), len(consented))


def replay_into(s: Settings) -> Replayed:
    from segstream.state.redis_client import client_for

    return replay(s, ForgottenCustomers(client_for(s), s.erasure_namespace))
