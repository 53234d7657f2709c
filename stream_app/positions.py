"""Where a partition resumes, and whether the log and the store still agree it can.

The window checkpoint in Redis, not Kafka's committed offset, says what was applied:
a partition resumes at the record after its checkpoint. Kafka's view is evidence
against which the checkpoint is checked when a partition is assigned. A position is
refused (the partition halts, nothing is skipped) when:

* Kafka says the group committed past the log's start but Redis holds no checkpoint
  for it: the store lost its data (restarted empty, wiped, replaced);
* the checkpoint is beyond the log's end: the topic was recreated or the broker's
  data wiped, and its offsets name other records now;
* the checkpoint records that Kafka once took a commit for the partition, the
  group's committed offset is gone, and the last checkpoint is more recent than the
  broker's offset retention: the broker lost its offsets, so its log is not the one
  the checkpoint counted;
* the log starts after the checkpoint: retention deleted records never applied;
* the topic has more partitions than the windows were cut for: customers' records now go
  to other partitions, and a month split over two would be counted once, in part;
* Redis had lost erasures that the erasure log gave back (a snapshot from before them,
  restored): it may hold those customers' data again until ``segstream recover`` erases it.

``segstream recover`` repairs each by moving the checkpoint to the log's start (the
states it has are kept; the window guard makes a replay harmless).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogBounds:
    """What Kafka says of one partition when it is assigned."""

    partition: int
    start: int  # first offset the log still holds
    end: int  # offset the next record will get
    committed: int | None  # the group's committed offset, None if it has none
    partitions: int = 0  # the topic's partition count (0: not known)


@dataclass(frozen=True)
class Position:
    partition: int
    offset: int | None  # the next offset to read; None: halted
    reason: str = ""  # why halted: store_lost, log_mismatch
    detail: str = ""


def position(
    log: LogBounds, checkpoint: tuple[int, float, int | None] | None, now: float, offsets_retention_s: float
) -> Position:
    """Where ``log``'s partition resumes given its checkpoint ``(last offset read, wall time,
    an offset Kafka is known to have committed or None)``."""
    p = log.partition
    if checkpoint is None:
        if log.committed is not None and log.committed > log.start:
            return Position(
                p,
                None,
                "store_lost",
                f"Kafka says this group read partition {p} up to offset {log.committed}, but Redis holds no "
                "checkpoint for it: the state store lost its data",
            )
        return Position(p, log.start)
    last, at, kafka_took = checkpoint
    nxt = last + 1
    if nxt > log.end:
        return Position(
            p,
            None,
            "log_mismatch",
            f"the checkpoint of partition {p} is at offset {last} but the log ends at {log.end}: "
            "the topic was recreated or the broker's data wiped",
        )
    if log.committed is None and kafka_took is not None and now - at < offsets_retention_s:
        return Position(
            p,
            None,
            "log_mismatch",
            f"partition {p} was checkpointed at offset {last} {now - at:.0f} s ago, but the broker has no "
            "committed offset for this group: the broker's data was wiped and its offsets name other records",
        )
    if nxt < log.start:
        return Position(
            p,
            None,
            "log_mismatch",
            f"records {nxt}..{log.start - 1} of partition {p} were deleted by retention before they were applied",
        )
    return Position(p, nxt)


def repartitioned(partition: int, recorded: int, partitions: int) -> Position | None:
    """A halt for every partition once the topic's partition count differs from the one this
    deployment's open windows were cut for (``recorded``)."""
    if not partitions or recorded == partitions:
        return None
    return Position(
        partition,
        None,
        "repartitioned",
        f"the topic now has {partitions} partitions, the open windows were cut for {recorded}: customers' "
        "records go to other partitions now; `segstream recover` moves their open windows",
    )


def erasures_restored(partition: int) -> Position:
    return Position(
        partition,
        None,
        "erasures_restored",
        "Redis had lost erasures (restored from an older snapshot?) and may hold erased customers' data "
        "again; `segstream recover` erases it",
    )
