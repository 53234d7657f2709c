"""Checkpoints of a partition's open windows and read position, in Redis.

A worker keeps open windows in memory and, after each batch's outputs are
published, writes what changed plus the last offset it consumed in one MULTI.
After a crash or a rebalance the next owner of the partition restores the
windows and skips events at or below that offset, so every event is counted
once whatever Kafka re-delivers.

Layout per (topic, partition) and open window number ``i``:
  ``{p}:w:{topic}:{part}:{i}``  hash customer -> fixed record (events, income, spend per category)
  ``{p}:k:{topic}:{part}:{i}``  string of the window's dedup keys (u64 each), appended per batch
  ``{p}:p:{topic}:{part}``      hash: offset, max_event_time, open (window numbers, comma-separated)
  ``{p}:e:{topic}:{part}``      the partition's epoch: claimed by each new owner (state/fencing.py)
  ``{p}:o:{topic}:{part}``      the consumer group that claimed it last
  ``{p}:n:{topic}``             the topic's partition count the windows were cut for
Appending keys keeps a checkpoint proportional to the batch, not to the window;
a closed window is two UNLINKs. On a Redis Cluster ``{topic}:{part}`` is a hash tag
(``{tx:3}``), so a partition's keys share one slot and its checkpoint stays one
transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import orjson
import redis
from redis.cluster import RedisCluster

from segstream.core.windows import WindowRows, merge_window_record
from segstream.errors import NamespaceShared, Repartitioned, StoreLost, StoreRolledBack

from .fencing import Fenced
from .redis_client import wait_for_replicas


class WindowCheckpoints:
    # what a checkpoint holds in the client per window row while it writes (the record's bytes,
    # the customer id, redis-py's packed command): measured ~710 B with 150k rows (bench/memory_bound_bench.py)
    ROW_TRANSIENT_BYTES = 768

    def __init__(self, client: redis.Redis, n_categories: int, prefix: str = "seg"):
        self.r = client
        self.width = 8 * (2 + n_categories)  # bytes per record
        self.prefix = prefix
        self.cluster = isinstance(client, RedisCluster)

    def _part(self, topic: str, partition: int) -> str:
        return f"{{{topic}:{partition}}}" if self.cluster else f"{topic}:{partition}"

    def _meta(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:p:{self._part(topic, partition)}"

    def epoch_key(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:e:{self._part(topic, partition)}"

    def replicate(self, topic: str, partitions: Iterable[int], timeout_ms: int = 1000) -> int:
        """On a cluster, wait until the masters holding these partitions' checkpoints have passed
        them to a replica: the offsets are committed to Kafka next, and a failover that lost a
        checkpoint Kafka's commit is already past would break the invariant (resuming from the
        surviving checkpoint re-reads, never skips, but Kafka would claim more than Redis holds).
        Returns the masters that found no replica in time."""
        if not self.cluster:
            return 0
        # a marker in each partition's own slot, written after its checkpoint
        return wait_for_replicas(self.r, [f"{self.prefix}:mark:{self._part(topic, p)}" for p in partitions], timeout_ms)

    def owner_key(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:o:{self._part(topic, partition)}"

    def claim(self, topic: str, partition: int, owner: str = "") -> int:
        """Become the partition's owner: every write under an older epoch is refused from now on.

        With ``owner`` (the consumer group), a claim held by another group is refused: two
        deployments sharing one namespace would otherwise take each other's partitions over."""
        if owner:
            held = self.r.get(self.owner_key(topic, partition))
            if held is not None and held.decode() != owner:
                raise NamespaceShared(
                    f"{topic}[{partition}] in namespace {self.prefix!r} is claimed by consumer group "
                    f"{held.decode()!r}, not {owner!r}: two deployments share one namespace "
                    "(give each its own SEGSTREAM_NAMESPACE, or `segstream recover --take-over`)"
                )
        with self.r.pipeline(transaction=True) as pipe:
            pipe.incr(self.epoch_key(topic, partition))
            if owner:
                pipe.set(self.owner_key(topic, partition), owner)
            return int(pipe.execute()[0])

    def take_over(self, topic: str, partition: int, owner: str) -> None:
        """Make ``owner`` the partition's group (an operator's decision: the old deployment is gone)."""
        self.r.set(self.owner_key(topic, partition), owner)

    def _window(self, topic: str, partition: int, index: int) -> tuple[str, str]:
        base = f"{self._part(topic, partition)}:{index}"
        return f"{self.prefix}:w:{base}", f"{self.prefix}:k:{base}"

    def save(
        self,
        topic: str,
        partition: int,
        offset: int,
        max_event_time: float,
        deltas: Iterable[WindowRows],
        closed: Iterable[int],
        open_windows: Iterable[int],
        epoch: int | None = None,
        leaders: dict[str, float] | None = None,
        saved: int | None = None,
    ) -> None:
        """Write the partition's checkpoint atomically; with ``epoch``, only while it is still
        the partition's epoch (WATCH: a claim between the check and EXEC aborts the write), and
        with ``saved`` (the offset this owner last wrote) only while Redis still holds it: an older
        one means Redis went back in time, and these deltas would land on windows they do not extend."""
        with self.r.pipeline(transaction=True) as pipe:
            if epoch is not None:
                key, meta = self.epoch_key(topic, partition), self._meta(topic, partition)
                pipe.watch(key)
                held = pipe.get(key)
                if held is None:
                    raise StoreLost(f"the claim {key} is gone: Redis lost this deployment's data")
                if int(held) != epoch:
                    raise Fenced([partition], "checkpoint")
                if saved is not None and int(pipe.hget(meta, "offset") or -1) != saved:
                    raise StoreRolledBack(
                        f"the checkpoint of {topic}[{partition}] went back from offset {saved}: Redis holds older "
                        "data than this worker wrote (restored from a snapshot?); re-reading from it"
                    )
                pipe.multi()
            self._queue(pipe, topic, partition, offset, max_event_time, deltas, closed, open_windows)
            if leaders is not None:
                pipe.hset(self._meta(topic, partition), "leaders", orjson.dumps(leaders))
            try:
                pipe.execute()
            except redis.WatchError:
                raise Fenced([partition], "checkpoint") from None

    def _queue(
        self,
        pipe: redis.client.Pipeline,
        topic: str,
        partition: int,
        offset: int,
        max_event_time: float,
        deltas: Iterable[WindowRows],
        closed: Iterable[int],
        open_windows: Iterable[int],
    ) -> None:
        for d in deltas:
            wkey, kkey = self._window(topic, partition, d.index)
            if d.customers:
                buf, w = np.ascontiguousarray(d.records, "<f8").tobytes(), self.width
                pipe.hset(wkey, mapping={c: buf[i * w : (i + 1) * w] for i, c in enumerate(d.customers)})
            if len(d.keys):
                pipe.append(kkey, d.keys.astype("<u8").tobytes())
        for i in closed:
            # UNLINK frees in Redis' background thread: a month end's window holds every
            # customer of the partition, and a DEL of millions of fields blocks Redis for seconds
            pipe.unlink(*self._window(topic, partition, i))
        opened = ",".join(map(str, sorted(open_windows)))
        pipe.hset(
            self._meta(topic, partition),
            mapping={"offset": offset, "max_event_time": repr(max_event_time), "open": opened, "at": repr(time.time())},
        )

    def meta(self, topic: str, partition: int) -> tuple[int, float, int | None] | None:
        """(last offset checkpointed, wall time of that checkpoint, an offset Kafka is known to have
        committed for the partition or None), or None if the partition has no checkpoint."""
        offset, at, kc = self.r.hmget(self._meta(topic, partition), "offset", "at", "kc")
        return None if offset is None else (int(offset), float(at or 0.0), None if kc is None else int(kc))

    def open_windows(self, topic: str, partition: int) -> list[int]:
        """The numbers of the partition's open windows, without their rows."""
        opened = self.r.hget(self._meta(topic, partition), "open")
        return [int(i) for i in opened.decode().split(",") if i] if opened else []

    def leaders(self, topic: str, partition: int) -> dict[str, float]:
        """The customers whose latest events the partition's clock follows (windows.py)."""
        raw = self.r.hget(self._meta(topic, partition), "leaders")
        return orjson.loads(raw) if raw else {}

    def kafka_committed(self, topic: str, partition: int, offset: int) -> None:
        """Record that Kafka took a commit of ``offset``: from then on, a partition whose group
        offsets vanish while its checkpoint is recent means the broker's data was lost."""
        self.r.hset(self._meta(topic, partition), "kc", offset)

    def reposition(self, topic: str, partition: int, offset: int) -> None:
        """Make the checkpoint say ``offset`` was the last record read, keeping its open windows:
        the recovery step that lets a worker resume at a log position an operator chose."""
        key = self._meta(topic, partition)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"offset": offset, "at": repr(time.time())})
            pipe.hsetnx(key, "open", "")
            pipe.hdel(key, "kc")  # the log it counted is gone, or never took a commit
            pipe.execute()

    def _layout(self, topic: str) -> str:
        return f"{self.prefix}:n:{{{topic}}}" if self.cluster else f"{self.prefix}:n:{topic}"

    def layout(self, topic: str, partitions: int, record: bool = True) -> int:
        """The partition count this deployment's windows were cut for; the first call records
        ``partitions`` (unless not ``record``). A customer's records go to one partition only while
        the count stays."""
        if not record:
            held = self.r.get(self._layout(topic))
            return partitions if held is None else int(held)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.set(self._layout(topic), partitions, nx=True)
            pipe.get(self._layout(topic))
            return int(pipe.execute()[1])

    def set_layout(self, topic: str, partitions: int) -> None:
        with self.r.pipeline(transaction=True) as pipe:
            pipe.set(self._layout(topic), partitions)
            pipe.delete(self._layout(topic) + ":seen")
            pipe.execute()

    def layout_changed_at(self, topic: str, now: float) -> float:
        """When a worker first saw the topic's partition count differ from the recorded one."""
        with self.r.pipeline(transaction=True) as pipe:
            pipe.set(self._layout(topic) + ":seen", repr(now), nx=True)
            pipe.get(self._layout(topic) + ":seen")
            return float(pipe.execute()[1])

    def moved_below(self, topic: str, partition: int) -> tuple[int, int]:
        """(offset, partition count): records of this partition below the offset whose customer
        belongs elsewhere under that count were added to that partition's windows, not to these."""
        below, count = self.r.hmget(self._meta(topic, partition), "mv_below", "mv_n")
        return (-1, 0) if below is None else (int(below), int(count))

    def mark_moved(self, topic: str, partition: int, below: int, partitions: int) -> None:
        self.r.hset(self._meta(topic, partition), mapping={"mv_below": below, "mv_n": partitions})

    def move_rows(self, topic: str, source: int, target: int, rows: WindowRows) -> bool:
        """Add ``rows`` (taken from ``source``'s open window ``rows.index``) to ``target``'s same window,
        merged with any row the customer has there, and carry the source window's dedup digests.

        Idempotent per (source, window): a marker written in the target's transaction makes a
        rerun after a crash skip the add; the caller then removes the rows from the source.
        Returns whether the rows were added now."""
        meta, marker = self._meta(topic, target), f"mv:{source}:{rows.index}"
        wkey, kkey = self._window(topic, target, rows.index)
        with self.r.pipeline(transaction=True) as pipe:
            pipe.watch(meta, wkey)
            if pipe.hexists(meta, marker):
                pipe.unwatch()
                return False
            opened = pipe.hget(meta, "open")
            held = pipe.hmget(wkey, rows.customers) if rows.customers else []
            records = np.array(rows.records, dtype="<f8", copy=True)
            for i, raw in enumerate(held):
                if raw is not None:
                    records[i] = merge_window_record(np.frombuffer(raw, "<f8"), records[i])
            indices = {int(x) for x in (opened or b"").decode().split(",") if x} | {rows.index}
            pipe.multi()
            if rows.customers:
                buf, w = records.tobytes(), self.width
                pipe.hset(wkey, mapping={c: buf[i * w : (i + 1) * w] for i, c in enumerate(rows.customers)})
            if len(rows.keys):
                pipe.append(kkey, rows.keys.astype("<u8").tobytes())
            pipe.hset(meta, mapping={marker: 1, "open": ",".join(map(str, sorted(indices)))})
            try:
                pipe.execute()
            except redis.WatchError:  # a worker wrote meanwhile: the partitions are meant to be halted
                raise Repartitioned(
                    f"{topic}[{target}] was written while its windows were being moved: halt every worker first"
                ) from None
        return True

    def drop_rows(self, topic: str, partition: int, index: int, customers: list[str]) -> None:
        if customers:
            self.r.hdel(self._window(topic, partition, index)[0], *customers)

    def forget(self, customer_id: str) -> int:
        """Remove the customer's rows from every open window of every partition; the rows removed.

        The windows' dedup digests stay: 64-bit hashes of (customer, event id) that name nobody."""
        removed = 0
        for key in self.r.scan_iter(match=f"{self.prefix}:w:*", count=1000):
            removed += self.r.hdel(key, customer_id)
        return removed

    def offset(self, topic: str, partition: int) -> int:
        """Last offset checkpointed for a partition, -1 if none: the read position a worker resumes from."""
        raw = self.r.hget(self._meta(topic, partition), "offset")
        return -1 if raw is None else int(raw)

    def load(self, topic: str, partition: int) -> tuple[int, float, list[WindowRows]]:
        """(last offset consumed or -1, max event time, open windows)."""
        offset, met, opened = self.r.hmget(self._meta(topic, partition), "offset", "max_event_time", "open")
        if offset is not None and opened is None:
            # Written by segstream 0.1 (one hash field per window): restoring only the offset
            # would skip events whose open windows were never read back.
            raise RuntimeError(
                f"the window checkpoint of {topic}[{partition}] is in segstream 0.1's format; "
                "finish the open windows with 0.1, or delete the seg:* checkpoint keys and "
                "reprocess the topic with a new consumer group (docs/reliability.md)"
            )
        indices = [int(i) for i in opened.decode().split(",") if i] if opened else []
        pipe = self.r.pipeline(transaction=True)
        for i in indices:
            wkey, kkey = self._window(topic, partition, i)
            pipe.hgetall(wkey)
            pipe.get(kkey)
        replies = pipe.execute()
        out = []
        for n, i in enumerate(indices):
            records, keys = replies[2 * n], replies[2 * n + 1] or b""
            customers = [c.decode() for c in records]
            data = np.frombuffer(b"".join(records.values()), "<f8").reshape(len(customers), self.width // 8)
            out.append(WindowRows(i, customers, data, np.frombuffer(keys, "<u8")))
        return (-1 if offset is None else int(offset)), (float("-inf") if met is None else float(met)), out
