"""What crosses between the worker's event loop and its core: records in, outputs back.

Kept apart from the processor so the event loop's process need not import the
model (torch) when the core runs in a process of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from segstream.core.engine import EngineResult
from segstream.core.events import InvalidEvent, SegmentChange

# batches that may land in the core after a check of its size: the outputs the worker reads
# are the batch before the one in the core, and the next one is already being fetched
BATCHES_AHEAD = 3


@dataclass
class PartitionBatch:
    """Records of one partition in offset order, as columns: no object per record."""

    partition: int
    offsets: list[int]
    values: list[bytes | None]  # None: a tombstone
    timestamp: float | None = None  # broker timestamp of the first record, seconds
    keys: list[bytes | None] | None = None  # record keys: each must be its event's customer id

    def __len__(self) -> int:
        return len(self.offsets)


def batch_of(records: Iterable[tuple[int, int, bytes | None, float | None, bytes | None]]) -> list[PartitionBatch]:
    """(partition, offset, value, broker timestamp, key) records, grouped by partition in order."""
    parts: dict[int, PartitionBatch] = {}
    for p, off, value, ts, key in records:
        pb = parts.get(p)
        if pb is None:
            pb = parts[p] = PartitionBatch(p, [], [], ts, [])
        pb.offsets.append(off)
        pb.values.append(value)
        pb.keys.append(key)
    return list(parts.values())


@dataclass
class BatchOutput:
    changes: list[SegmentChange] = field(default_factory=list)
    dead_letters: list[InvalidEvent] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # ok, late, duplicate, invalid, replayed, moved
    engine: EngineResult = field(default_factory=EngineResult)
    windows_closed: int = 0
    open_windows: int = 0  # across this worker's partitions, after the batch
    headroom_bytes: int = 0  # what the next batch and checkpoint could allocate in the core at most
    clock_moved: bool = False  # the wall clock closed a quiet partition's windows: checkpoint it
