"""Whether Redis may drop this deployment's keys by itself, and whether it did.

No key segstream writes has a TTL: it lives until segstream deletes it. So ``noeviction``
answers a full Redis with errors (the worker rides them out as an outage), and the
``volatile-*`` policies evict only keys with a TTL, never ours. An ``allkeys-*`` policy with
a ``maxmemory`` (a Redis set up as a cache) evicts the least used keys silently: a bucket of
customers' states, a partition's open window, and the worker would re-warm them from nothing
and commit past their records, healthy.

Redis says neither which keys it evicted nor when; only its policy and a count of evictions
since it started (INFO). So every worker reads both at each checkpoint and at each assignment
and keeps, per Redis run, the count it last saw in the namespace. An evicting policy halts the
partitions (``store_may_evict``) until an operator changes it; a count that grew while the
policy could evict, or a Redis that restarted while it could, means this deployment's data may
be gone: that is written to Redis, so every worker halts (``store_evicted``), until ``segstream
recover`` rebuilds the namespace from the retained input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoPermissionError

from segstream.errors import StoreEvicted, StoreMayEvict

from .keys import glob_literal


@dataclass(frozen=True)
class NodeMemory:
    """What one Redis node's INFO says of eviction."""

    run_id: str  # changes at every restart: its eviction count starts again from zero
    policy: str
    maxmemory: int
    evicted: int  # keys evicted since the node started

    @property
    def may_evict(self) -> bool:
        return self.policy.startswith("allkeys-") and self.maxmemory > 0

    @classmethod
    def of(cls, info: dict) -> NodeMemory:
        return cls(
            str(info["run_id"]), str(info["maxmemory_policy"]), int(info["maxmemory"]), int(info["evicted_keys"])
        )


class EvictionWatch:
    def __init__(self, client: redis.Redis, prefix: str):
        self.r = client
        self.prefix = prefix
        own = f"{prefix}:{{eviction}}"  # one hash tag: on a cluster the three share a slot (one MULTI)
        self.seen_key = f"{own}:counts"  # run id -> "evicted keys:1 if it could evict"
        self.flag_key = f"{own}:lost"  # set once data may be gone; `segstream recover` clears it
        self.rebuilt_key = f"{own}:rebuilt"  # when `segstream recover` last rebuilt the namespace
        self._own = (self.seen_key, self.flag_key, self.rebuilt_key)
        # kept by this process too: under an evicting policy the flag and the counts may go themselves
        self._lost: bytes | None = None
        self._seen: dict[str, str] = {}
        self._seen_at = 0.0

    def nodes(self) -> list[NodeMemory]:
        try:
            if isinstance(self.r, RedisCluster):
                got = self.r.info(target_nodes=RedisCluster.PRIMARIES)  # one node's dict, or one per node
                infos = [got] if "run_id" in got else list(got.values())
            else:
                infos = [self.r.info()]
        except NoPermissionError:
            raise StoreMayEvict(
                "this Redis user may not run INFO, so the worker cannot tell whether Redis evicts its keys: "
                "allow it (`ACL SETUSER <user> +info`)"
            ) from None
        return [NodeMemory.of(i) for i in infos]

    def check(self) -> None:
        """Raise :class:`StoreEvicted` if this deployment's data may have been evicted (now or
        since any worker last looked), :class:`StoreMayEvict` if Redis could evict it from now on."""
        nodes = self.nodes()
        lost = self.r.get(self.flag_key) or self._still_lost()
        if lost is None:
            lost = self._count(nodes)
        if lost is not None:
            self._lost = lost
            raise StoreEvicted(
                f"{orjson.loads(lost)['why']}: this deployment's states or open windows may be gone; "
                "`segstream recover` rebuilds them from the retained input"
            )
        for n in nodes:
            if n.may_evict:
                raise StoreMayEvict(
                    f"Redis (run {n.run_id[:8]}) has maxmemory-policy {n.policy} with maxmemory {n.maxmemory}: "
                    "it would evict customers' states when full; set `maxmemory-policy noeviction`"
                )

    def _still_lost(self) -> bytes | None:
        """The loss this process saw, when its flag is gone: evicted itself (written again), or
        cleared by a rebuild since (forgotten)."""
        if self._lost is None:
            return None
        if self._rebuilt_since(orjson.loads(self._lost)["at"]):
            self._lost = None
            return None
        self.r.set(self.flag_key, self._lost)
        return self._lost

    def _rebuilt_since(self, at: float) -> bool:
        rebuilt = self.r.get(self.rebuilt_key)
        return rebuilt is not None and float(rebuilt) >= at

    def _count(self, nodes: list[NodeMemory]) -> bytes | None:
        """Compare the nodes' eviction counts with the ones last seen, and keep the new ones."""
        stored = {k.decode(): v.decode() for k, v in self.r.hgetall(self.seen_key).items()}
        if not stored and self._seen and self._rebuilt_since(self._seen_at):
            self._seen = {}  # a rebuild since this process looked covers every eviction before it
        seen = {**self._seen, **stored}  # what Redis keeps is the newest; this process's own, if it went
        why = self._evicted(nodes, seen) or self._unseen(nodes, seen)
        lost = orjson.dumps({"why": why, "at": time.time()}) if why else None
        now = self._seen = self._counts(nodes)
        self._seen_at = time.time()
        if now != stored:
            with self.r.pipeline(transaction=True) as pipe:
                pipe.delete(self.seen_key)
                pipe.hset(self.seen_key, mapping=now)
                if lost:
                    pipe.set(self.flag_key, lost)
                pipe.execute()
        return lost

    @staticmethod
    def _counts(nodes: list[NodeMemory]) -> dict[str, str]:
        return {n.run_id: f"{n.evicted}:{int(n.may_evict)}" for n in nodes}

    @staticmethod
    def _evicted(nodes: list[NodeMemory], seen: dict[str, str]) -> str:
        """Why data may be gone since the counts in ``seen`` were taken, or ""."""
        for n in nodes:
            last = seen.get(n.run_id)
            if last is None:
                continue
            count, could = (int(x) for x in last.split(":"))
            if n.evicted > count and (could or n.may_evict):
                return f"Redis evicted {n.evicted - count} keys under maxmemory-policy {n.policy}"
        running = {n.run_id for n in nodes}
        gone = [run for run, last in seen.items() if run not in running and last.endswith(":1")]
        if gone:
            return f"Redis restarted (run {gone[0][:8]}) while its policy could evict keys"
        return ""

    def _unseen(self, nodes: list[NodeMemory], seen: dict[str, str]) -> str:
        """A node that evicts, has evicted, and of which no count was kept though the namespace holds
        data: the counts themselves were evicted (a deployment's first look at a cache finds no data)."""
        for n in nodes:
            if n.run_id not in seen and n.may_evict and n.evicted and self._holds_data():
                return f"Redis evicts keys ({n.evicted} so far, maxmemory-policy {n.policy}) and kept no count of them"
        return ""

    def _holds_data(self) -> bool:
        keys = (
            k.decode(errors="replace") for k in self.r.scan_iter(match=f"{glob_literal(self.prefix)}:*", count=1000)
        )
        return any(k not in self._own for k in keys)

    def lost(self) -> bool:
        return bool(self.r.exists(self.flag_key))

    def rebuilt(self) -> None:
        """``segstream recover`` emptied the namespace: nothing of it can be missing any more."""
        self._lost = None
        self._seen, self._seen_at = self._counts(self.nodes()), time.time()
        with self.r.pipeline(transaction=True) as pipe:
            pipe.set(self.rebuilt_key, repr(self._seen_at))
            pipe.delete(self.flag_key, self.seen_key)
            pipe.hset(self.seen_key, mapping=self._seen)  # every eviction so far is behind the rebuild
            pipe.execute()

    def wipe(self, keep: tuple[str, ...] = ()) -> int:
        """Delete every key of the namespace but the watch's own and those starting with ``keep``: what
        evictions left is a part of a whole no one can tell apart from the rest. Returns how many."""
        n = 0
        for key in self.r.scan_iter(match=f"{glob_literal(self.prefix)}:*", count=10_000):
            name = key.decode(errors="replace")
            if name not in self._own and not name.startswith(keep):
                n += self.r.unlink(key)
        return n
