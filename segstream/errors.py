"""One root for segstream's errors, split by whose fault they are.

The split is the worker's whole failure policy. A :class:`RecordError` belongs to one
record (or one customer's window): it is dead-lettered with its reason and the stream
goes on. A :class:`SystemFailure` belongs to the system (a store lost or unreachable,
a fence, a log that no longer matches the checkpoints): it is never dead-lettered and
never skipped; the worker stops, says so, and resumes from its last checkpoint once it
is repaired. A :class:`ConfigError` is an operator's to fix; only the CLI turns it into
one line and an exit code.
"""

from __future__ import annotations


class SegstreamError(Exception):
    """Root of every error segstream raises on purpose."""


class ConfigError(SegstreamError):
    """A setting, a file or a credential that cannot work as given."""


class NotFound(SegstreamError, LookupError):
    """What a reader asked for is not there (yet): the API answers 404 with the message."""


class RecordError(SegstreamError, ValueError):
    """Whose fault is one record's: the record is dead-lettered with ``reason``."""

    reason = "invalid"


class NonFiniteValues(RecordError):
    """A window whose features or state would not be finite numbers: the window's own data is at
    fault (an absurd amount or income), and it must never reach a shared centroid."""

    reason = "value:non_finite"


class SystemFailure(SegstreamError, RuntimeError):
    """Nobody's record is at fault: never a dead letter, never a skip."""

    reason = "system"


class StoreLost(SystemFailure):
    """The state store no longer holds what this deployment wrote (restarted empty, wiped,
    replaced): applying more would re-warm customers from nothing and commit past records
    whose effect is gone. Recovery: ``segstream recover`` (README, operations)."""

    reason = "store_lost"


class StoreRolledBack(SystemFailure):
    """Redis holds older data than this worker last wrote or read (restored from a snapshot, a
    replica promoted behind its master): building on it would drop what came after. Recovery is the
    outage's: re-read every partition from the checkpoints Redis holds now."""

    reason = "store_rolled_back"


class StoreMayEvict(SystemFailure):
    """Redis is set to evict keys when it is full (``maxmemory`` with an ``allkeys-*`` policy, as a
    cache is): it would drop a quiet customer's state or an open window without a word, and the
    worker would re-warm them from nothing. Halted until the policy cannot evict this deployment's
    keys (``noeviction``; a ``volatile-*`` one evicts only keys with a TTL, and none of ours has one)."""

    reason = "store_may_evict"


class StoreEvicted(StoreLost):
    """Redis evicted keys under an evicting policy since this deployment last looked: Redis does
    not say which, so any state or open window may be gone. Recovery: ``segstream recover``
    rebuilds the namespace from the retained input (README, operations)."""

    reason = "store_evicted"


class LayoutChanged(SystemFailure):
    """The deployment's checkpoints count records applied to states kept under another layout (another
    model artefact, bucket count or slot groups): this worker's layout holds none of them, and going on
    would re-warm every customer from the checkpoint, history lost. Repair: the old settings, the new
    model as its own deployment (README, blue/green), or ``segstream recover --rebuild``."""

    reason = "layout_changed"


class StoreCorrupt(SystemFailure):
    """A stored value that no code path may write (a non-finite centroid, a record of the wrong
    size): served as a clean 503; the worker waits for the value to be repaired, applying nothing,
    since every window would build on it or be dead-lettered for its fault."""

    reason = "store_corrupt"


class EngineFailing(SystemFailure):
    """The core fails on windows with no evidence that any record is at fault: every window of a
    batch of several customers failed, or a plain window of a customer never seen fails too (a
    broken artefact, memory, a bug every window trips). Dead-lettering them would skip the
    stream: the worker backs off and reads from its checkpoint again until the core works."""

    reason = "engine_failing"


class LogMismatch(SystemFailure):
    """The input log does not match the checkpoints (the topic recreated, the broker's data
    wiped, records deleted by retention before they were applied)."""

    reason = "log_mismatch"


class Repartitioned(SystemFailure):
    """The transactions topic gained partitions since the windows were cut: a customer's month
    would be counted in two partitions, and the part that closes second dropped as a replay.
    Recovery: ``segstream recover`` moves the open windows (README, operations)."""

    reason = "repartitioned"


class NamespaceShared(SystemFailure, ConfigError):
    """Another deployment (another consumer group) claims partitions in this namespace."""

    reason = "namespace_shared"
