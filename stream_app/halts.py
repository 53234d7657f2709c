"""Partitions a worker holds but will not process until they are repaired, and why.

A halt is never a skip: the partition is paused, nothing of it is committed, ``/healthz``
names it (``partition 3: store_lost: ...``), ``segstream_halted_partitions{reason}``
counts it, and one line says so (once per partition and reason). The ingest loop checks
halted partitions again every few seconds and resumes each where its checkpoint says.
"""

from __future__ import annotations

import logging

from . import metrics
from .health import Health
from .positions import Position

log = logging.getLogger("segstream.worker")
REASONS = (
    "store_lost",
    "log_mismatch",
    "namespace_shared",
    "repartitioned",
    "erasures_restored",
    "store_may_evict",
    "store_evicted",
    "layout_changed",
)


class Halts:
    def __init__(self, health: Health):
        self.health = health
        self.by_partition: dict[int, Position] = {}

    def __contains__(self, partition: int) -> bool:
        return partition in self.by_partition

    def __bool__(self) -> bool:
        return bool(self.by_partition)

    def partitions(self) -> list[int]:
        return sorted(self.by_partition)

    def add(self, pos: Position) -> None:
        held = self.by_partition.get(pos.partition)
        if held is None or held.reason != pos.reason:
            log.error(
                "partition %d halted, nothing skipped: %s; repair, then it resumes by itself "
                "(README, operations: `segstream recover`)",
                pos.partition,
                pos.detail,
            )
        self.by_partition[pos.partition] = pos
        self.health.set(f"partition {pos.partition}", f"{pos.reason}: {pos.detail}")
        self._report()

    def lift(self, pos: Position) -> None:
        """The partition resumes at ``pos`` (a no-op if it was not halted)."""
        if self.by_partition.pop(pos.partition, None) is not None:
            log.warning("partition %d resumes at offset %d", pos.partition, pos.offset)
            self.health.clear(f"partition {pos.partition}")
            self._report()

    def drop(self, partitions: list[int]) -> None:
        """Partitions revoked: no longer this worker's to repair."""
        for p in partitions:
            self.by_partition.pop(p, None)
            self.health.clear(f"partition {p}")
        self._report()

    def _report(self) -> None:
        reasons = [p.reason for p in self.by_partition.values()]
        for reason in REASONS:
            metrics.HALTED.labels(reason).set(reasons.count(reason))
