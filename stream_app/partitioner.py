"""Which partition a customer's records go to: Kafka's default partitioner.

Bootstrap spills a history by it, and after the transactions topic gains partitions
``segstream recover`` moves each customer's open windows to the partition it names now
(stream_app/repartition.py). Producers must partition as Kafka's clients do by default
(murmur2 of the key: the Java client, kafka-python, aiokafka; librdkafka with
``partitioner=murmur2_random``).
"""

from __future__ import annotations


class Partitioner:
    """Kafka's default partitioner (murmur2 of the key), memoised per customer: the pure-Python
    hash costs microseconds, and a bank's history repeats each customer hundreds of times."""

    def __init__(self, partitions: int):
        from kafka.partitioner.default import murmur2

        self.partitions = partitions
        self._hash = murmur2
        self._memo: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        p = self._memo.get(key)
        if p is None:
            p = self._memo[key] = (self._hash(key) & 0x7FFFFFFF) % self.partitions
        return p
