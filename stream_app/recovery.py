"""``segstream recover``: the repair for a halted partition, as one command.

A worker halts a partition whose checkpoint and log disagree (stream_app/positions.py)
and says why. The repair is the same for every reason: the checkpoint is moved to the
start of the log the broker still holds, keeping every state and open window Redis
still has, and the worker, which checks its halted partitions every few seconds,
resumes there by itself. After a lost store that rebuilds every state from the
retained input (the topic's retention must cover the history the model needs); after a
recreated topic it reads the new log from its start; after records lost to retention it
goes on from the oldest one left, and says how many were never applied. The window
guard makes any record read twice harmless. ``--take-over`` also hands the namespace's
partitions to this deployment's consumer group (the other deployment is gone). Before
anything else it reads the erasure log back into Redis (erasure_log.py), so no replay brings
an erased customer back; after the topic gained partitions it moves open windows to
customers' new partitions (repartition.py). After Redis evicted keys (state/eviction.py) it
first empties the namespace, since no one can tell what is left from what is missing, and
every partition is then rebuilt as after a lost store.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from segstream.config import Settings
from segstream.core.personality import CATEGORIES
from segstream.errors import ConfigError
from segstream.state.eviction import EvictionWatch
from segstream.state.layout import StateLayout
from segstream.state.redis_client import client_for
from segstream.state.redis_store import RedisStateStore
from segstream.state.redis_windows import WindowCheckpoints

from . import erasure_log
from .erasure import Eraser
from .erasure_log import Replayed
from .positions import LogBounds, position
from .repartition import Moved, repartition


@dataclass
class Repair:
    partition: int
    reason: str  # "" when the partition was fine
    detail: str
    resumes_at: int
    never_applied: int  # records the log no longer holds that no checkpoint covered


def log_bounds(s: Settings) -> list[LogBounds]:
    """What the broker says of every partition of the transactions topic, for this group."""
    from kafka import KafkaConsumer, TopicPartition

    from .kafka_config import kafka_python_options

    c = KafkaConsumer(**kafka_python_options(s), group_id=s.consumer_group, enable_auto_commit=False)
    try:
        parts = sorted(c.partitions_for_topic(s.topic_transactions) or [])
        tps = [TopicPartition(s.topic_transactions, p) for p in parts]
        starts, ends = c.beginning_offsets(tps), c.end_offsets(tps)
        return [LogBounds(tp.partition, starts[tp], ends[tp], c.committed(tp), len(tps)) for tp in tps]
    finally:
        c.close()


def recover(s: Settings, *, take_over: bool = False, dry_run: bool = False, rebuild: bool = False) -> Recovery:
    """Check every partition as a worker would at assignment; move open windows to a new partition
    count, the halted partitions' checkpoints to their log's start, and re-seed missing centroids.
    Returns what was (or would be) done."""
    from segstream.assembly import load_model

    r, purged = client_for(s), 0
    artefact, model = load_model(s)
    store = RedisStateStore.for_deployment(r, s, model.hidden_size, model.version)
    layout = StateLayout.for_deployment(r, s, store.keys)
    relayout = _relayout(layout, rebuild)
    # erasures first: a Redis that lost them would re-create erased customers from the replay
    erasures = None if dry_run else erasure_log.replay_into(s)
    evictions = EvictionWatch(r, s.redis_prefix)
    wiped = _emptied(s, evictions, dry_run, relayout)
    if relayout is not None and not dry_run:
        layout.record()  # at once: a worker of the old layout halts from its next look on
    cp = WindowCheckpoints(r, len(CATEGORIES), prefix=s.redis_prefix)
    logs = log_bounds(s)
    moved = repartition(s, cp, logs, dry_run=dry_run)
    out = []
    for log in logs:
        meta = cp.meta(s.topic_transactions, log.partition)
        pos = position(log, meta, time.time(), s.kafka_offsets_retention_s)
        if pos.offset is not None:
            out.append(Repair(log.partition, "", "", pos.offset, 0))
            continue
        last = -1 if meta is None else meta[0]
        lost = max(log.start - (last + 1), 0) if pos.reason == "log_mismatch" and last + 1 <= log.end else 0
        out.append(Repair(log.partition, pos.reason, pos.detail, log.start, lost))
        if not dry_run:
            cp.reposition(s.topic_transactions, log.partition, log.start - 1)
    if take_over and not dry_run:
        for repair in out:
            cp.take_over(s.topic_transactions, repair.partition, s.consumer_group)
    if not dry_run:
        store.init_centroids(artefact.centroids, s.centroid_prior_weight)  # only where they are missing
        eraser = Eraser(s, r, store)
        if eraser.forgotten.purge_pending():  # the workers stay halted until this is done
            purged = eraser.purge()
        if wiped is not None:
            evictions.rebuilt()  # last: the workers resume from here
    return Recovery(out, moved, erasures, purged, wiped, relayout)


def _relayout(layout: StateLayout, rebuild: bool) -> dict | None:
    """The layout change a ``--rebuild`` repairs (recorded and new), or None if the deployment's states
    are where these settings look. Refused without ``--rebuild``: it deletes the states kept under the
    recorded layout, and settings that name the wrong artefact would otherwise delete good ones."""
    recorded = layout.recorded()
    if recorded is None or recorded == layout.layout:
        return None
    if not rebuild:
        raise ConfigError(
            f"the deployment's states are kept under {recorded!r}, these settings keep them under "
            f"{layout.layout!r}: fix the settings (SEGSTREAM_MODEL_PATH, SEGSTREAM_REDIS_STATE_BUCKETS), or pass "
            "--rebuild to delete the deployment's states and checkpoints and rebuild every state under the new "
            "layout from the retained topic"
        )
    return {"recorded": recorded, "new": layout.layout}


def _emptied(s: Settings, evictions: EvictionWatch, dry_run: bool, relayout: dict | None = None) -> int | None:
    """Empty the namespace if Redis evicted keys of it, or if its states are to be rebuilt under a new
    layout (the erased set stays): the keys deleted, or None when neither. Refused while Redis could
    still evict."""
    if not evictions.lost() and relayout is None:
        return None
    evicting = [n for n in evictions.nodes() if n.may_evict]
    if evicting:
        raise ConfigError(
            f"Redis still has maxmemory-policy {evicting[0].policy}: set `maxmemory-policy noeviction` "
            "first, or the rebuild may be evicted too"
        )
    if dry_run:
        return 0
    keep = (f"{s.erasure_namespace}:forgotten", f"{s.redis_prefix}:forgotten")
    return evictions.wipe(keep)


@dataclass
class Recovery:
    repairs: list[Repair]
    moved: Moved | None  # open windows moved to a new partition count
    erasures: Replayed | None  # the erasure log read back into Redis (None in a dry run)
    purged: int = 0  # erased customers whose data a restored Redis held again, erased again
    rebuilt: int | None = None  # after evictions or a new layout: the namespace's keys deleted before the rebuild
    relayout: dict | None = None  # the layout change rebuilt (``--rebuild``): recorded and new

    def report(self, dry_run: bool) -> dict:
        return {
            "dry_run": dry_run,
            "repaired": sum(1 for x in self.repairs if x.reason),
            "never_applied": sum(x.never_applied for x in self.repairs),
            "repartitioned": None if self.moved is None else asdict(self.moved),
            "erasures": None if self.erasures is None else {**asdict(self.erasures), "purged": self.purged},
            "evicted": None if self.rebuilt is None or self.relayout else {"keys_deleted": self.rebuilt},
            "relayout": None if self.relayout is None else {**self.relayout, "keys_deleted": self.rebuilt},
            "partitions": [asdict(x) for x in self.repairs],
        }
