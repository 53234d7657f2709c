"""Customers' LSTM states and the shared k-means statistics in Redis.

Each customer's state is a fixed-size little-endian record (24-byte header: window,
announced segments, change statistic; then float16 h, c and shadow state), kept as a
field of one of ``buckets`` hashes (``ns:sb256:123``, 123 = CRC-32 of the id modulo the
bucket count). A hash field costs its record, its id and a dictionary entry, where a key
of its own also cost an object, the namespace in its name and a slot in the keyspace:
~185 B a customer instead of ~280 B, on a stock Redis (BENCHMARKS.md §2). The batch is
sorted by bucket, so each bucket costs one HMGET (and one HSET) however many of its
customers the batch holds: few buckets, few commands. A batch is read by one HMGET per
bucket in one pipeline, decoded by one ``np.frombuffer``; written by one script that
applies each record only if its window is newer than the stored one and folds the
written customers' hidden states into the centroid sums in the same atomic step: a
replayed batch after a crash can neither move a state back nor count a window twice in
the centroids. The trajectory (the last ``history`` entries of header and h) is one
string field per customer in as many trajectory hashes (``ns:tb256:123``).

On a Redis Cluster a script may only touch keys of one hash slot. Buckets are then
spread over ``groups`` hash-tagged slot groups (``ns:{g7}:sb256:...``, 7 = the bucket
modulo ``groups``), and each group has its own centroid sums, segment sizes, window
flows and copies of the partitions' fence epochs: a batch is committed as one atomic
script per group touched, and reads add the groups' statistics up. The replay guard is
per customer, so a batch whose commit stopped between two groups is finished by its
replay, not doubled. Sizes and flows stay exact (they are sums of exact parts); the
prior of the shipped centroids lives in group 0 only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources

import numpy as np
import redis
from redis.cluster import RedisCluster

from segstream.config import Settings
from segstream.core.ports import CentroidStats, StateBatch, flow_counts
from segstream.errors import NonFiniteValues, StoreCorrupt, StoreLost, StoreRolledBack

from .fencing import Fenced
from .keys import StateKeys, bucket_of, buckets_of
from .redis_client import wait_for_replicas
from .redis_reads import RedisReads


def _no_fences() -> list[tuple[str, int, int]]:
    return []


def _lua(*names: str) -> str:
    """A script from state/lua/, with the helpers it needs prepended (Redis runs one text)."""
    return "\n".join((resources.files(__package__) / "lua" / name).read_text() for name in names)


def record_dtype(hidden_size: int) -> np.dtype:
    """The state record; the commit script reads ``last_window`` at byte 0, ``segment`` and
    ``prev_segment`` at 4, ``nearest`` at 10 and ``h`` at 24: keep them there. float16 state
    (every store rounds alike: ports.StateBatch.stored): 120 bytes at hidden size 12,
    which changed no label or change event on four simulated banks against float32."""
    return np.dtype(
        [
            ("last_window", "<i4"),
            ("segment", "<i2"),
            ("prev_segment", "<i2"),
            ("n_windows", "<u2"),
            ("nearest", "<i2"),
            ("streak", "u1"),
            ("pending", "u1"),
            ("chart", "<f2", (5,)),  # "ewma" before 0.8.2: same bytes
            ("h", "<f2", (hidden_size,)),
            ("c", "<f2", (hidden_size,)),
            ("shadow_h", "<f2", (hidden_size,)),
            ("shadow_c", "<f2", (hidden_size,)),
        ]
    )


class RedisStateStore(RedisReads):
    """The commit path: batches of states read and written, centroid folds, fences, erasure.
    What operators and the API read (sizes, flows, trajectories, listings) is in redis_reads.py."""

    def __init__(
        self,
        client: redis.Redis,
        hidden_size: int,
        model_version: str,
        prefix: str = "seg",
        history: int = 0,
        groups: int = 16,
        buckets: int = 256,
        fences: Callable[[], list[tuple[str, int, int]]] | None = None,
    ):
        self.r = client
        self.hidden_size = hidden_size
        self.dtype = record_dtype(hidden_size)
        self._empty = self._encode(StateBatch.empty(1, hidden_size)).tobytes()  # a customer never seen
        self.cluster = isinstance(client, RedisCluster)
        # states only make sense for the model that wrote them, in the record layout that wrote them
        self.keys = StateKeys(
            prefix, model_version, self.cluster, max(1, groups) if self.cluster else 1, max(1, buckets)
        )
        self.groups, self.buckets = self.keys.groups, self.keys.buckets
        self._ns = self.keys.namespaces
        self.history = history  # windows of trajectory kept per customer (0: none)
        self.centroid_keys = self.keys.per_group("centroids")
        self.sizes_keys = self.keys.per_group("sizes")
        self.flows_keys = self.keys.per_group("flows")  # window:before:after -> customers (aggregates only)
        self.centroid_key = self.centroid_keys[0]
        # (epoch key, epoch, partition) the next commits are made under, from the worker's core
        # per batch; none where nobody else can own the customers (the demo, tools)
        self.fences = fences or _no_fences
        self._version_seen = -1
        self._commit = client.register_script(_lua("half.lua", "runs.lua", "commit.lua"))
        self._init = client.register_script(_lua("init.lua"))
        self._forget = client.register_script(_lua("half.lua", "forget.lua"))
        self._raise = client.register_script(_lua("raise.lua"))
        self.k = 0
        self._unsynced: set[int] = set()  # slot groups written since the last replicate()
        self.replica_timeout_ms = 1000

    @classmethod
    def for_deployment(
        cls,
        client: redis.Redis,
        settings: Settings,
        hidden_size: int,
        model_version: str,
        fences: Callable[[], list[tuple[str, int, int]]] | None = None,
    ) -> RedisStateStore:
        """The store every entry point of one deployment shares: its namespace, its trajectory length."""
        return cls(
            client,
            hidden_size,
            model_version,
            prefix=settings.redis_prefix,
            history=settings.history_windows,
            groups=settings.redis_cluster_groups,
            buckets=settings.redis_state_buckets,
            fences=fences,
        )

    def bucket(self, customer_id: str) -> int:
        return bucket_of(customer_id, self.buckets)

    def group(self, customer_id: str) -> int:
        return self.keys.group_of(self.bucket(customer_id))

    def bucket_key(self, customer_id: str) -> str:
        """The hash whose field ``customer_id`` holds the customer's record."""
        return self.keys.state(self.bucket(customer_id))

    def _trajectory_key(self, customer_id: str) -> str:
        return self.keys.trajectory(self.bucket(customer_id))

    def _pipeline(self):
        """One request per node: a cluster's pipeline routes each command to its key's node."""
        return self.r.pipeline() if self.cluster else self.r.pipeline(transaction=False)

    def _placed(self, customer_ids: Sequence[str]) -> dict[int, tuple[np.ndarray, list[int], np.ndarray]]:
        """Per slot group: its rows of the batch sorted by bucket (stable, so a customer twice
        keeps its order), its buckets and each bucket's count of rows."""
        b = buckets_of(customer_ids, self.buckets)
        order = np.argsort(b, kind="stable")
        g = b[order] % self.groups
        out = {}
        for grp in np.unique(g).tolist():
            rows = order[g == grp] if self.groups > 1 else order
            uniq, counts = np.unique(b[rows], return_counts=True)
            out[grp] = (rows, uniq.tolist(), counts)
        return out

    def init_centroids(self, centroids: np.ndarray, prior_weight: float) -> None:
        seed = CentroidStats.seed(centroids, prior_weight)
        self.k = len(seed.counts)
        for g, key in enumerate(self.centroid_keys):  # the prior once, in group 0; the others start empty
            sums, counts = (seed.sums, seed.counts) if g == 0 else (0 * seed.sums, 0 * seed.counts)
            self._init(keys=[key], args=[sums.astype("<f8").tobytes(), counts.astype("<f8").tobytes()])

    def claim(self, epoch_key: str, epoch: int) -> None:
        """On a cluster, copy a partition's newly claimed epoch into every slot group, where the
        commit script can check it; on one Redis the script reads the epoch key itself."""
        if self.cluster:
            for n in self._ns:
                self._raise(keys=[f"{n}:fence:{epoch_key}"], args=[epoch])

    def _fence_keys(self, g: int, fences: list[tuple[str, int, int]]) -> list[str]:
        return [self.keys.fence(g, k) for k, _, _ in fences]

    def load(self, customer_ids: Sequence[str]) -> tuple[StateBatch, CentroidStats]:
        """One HMGET per bucket, all in one pipeline (one request per node): a plain read, so the
        API's read-only user can do it, and cheaper for Redis than a script that loops."""
        if not customer_ids:
            return StateBatch.empty(0, self.hidden_size), self.centroid_stats()
        pipe = self._pipeline()
        runs = []
        for rows, buckets, counts in self._placed(customer_ids).values():
            for b, run in zip(buckets, np.split(rows, np.cumsum(counts)[:-1])):
                pipe.hmget(self.keys.state(b), [customer_ids[i] for i in run.tolist()])
                runs.append(run)
        for key in self.centroid_keys:
            pipe.hmget(key, "sums", "counts", "version")
        replies = pipe.execute()
        empty = self._empty
        found = b"".join(v if v is not None else empty for values in replies[: len(runs)] for v in values)
        rec = np.empty(len(customer_ids), self.dtype)
        try:
            rec[np.concatenate(runs)] = np.frombuffer(found, self.dtype)
        except ValueError as err:  # a value no commit writes: which customer's, Redis cannot say cheaply
            raise StoreCorrupt(f"a state record is not {self.dtype.itemsize} bytes long ({err})") from err
        stats = self._merged(replies[len(runs) :])
        self._check_time(stats.version)
        return self._decode(rec), stats

    def _check_time(self, version: int) -> None:
        """In a worker's core (fenced commits) the centroids' version only grows: every commit that
        assigns a window adds one. A lower one than already read means Redis went back in time, and
        states built on it would drop the windows applied since."""
        if self.fences is _no_fences:
            return
        if version < self._version_seen:
            raise StoreRolledBack(
                f"the centroids' version went back from {self._version_seen} to {version}: Redis holds older "
                "data than this worker read (restored from a snapshot?); re-reading from its checkpoints"
            )
        self._version_seen = version

    def resync(self) -> None:
        """Accept whatever Redis holds now (after a rewind, or a recover that re-seeded the centroids)."""
        self._version_seen = -1

    def _evaluate(self, calls: list[tuple]) -> list:
        """Scripts (script, keys, args) in one pipeline: one request per node. Errors come back
        as values; a script a node never saw (new, or promoted) is run again through its Script
        object, which loads it."""
        pipe = self._pipeline()
        for script, keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        replies = pipe.execute(raise_on_error=False)
        for i, (script, keys, args) in enumerate(calls):
            if isinstance(replies[i], redis.exceptions.NoScriptError):
                try:
                    replies[i] = script(keys=keys, args=args)
                except redis.RedisError as err:
                    replies[i] = err
        return replies

    def centroid_stats(self) -> CentroidStats:
        pipe = self._pipeline()
        for key in self.centroid_keys:
            pipe.hmget(key, "sums", "counts", "version")
        return self._merged(pipe.execute())

    def _merged(self, parts: list[list[bytes | None]]) -> CentroidStats:
        """The groups' centroid statistics added up: each group folded its own customers."""
        stats = [self._stats(*p) for p in parts]
        if len(stats) == 1:
            return stats[0]
        return CentroidStats(sum(s.sums for s in stats), sum(s.counts for s in stats), sum(s.version for s in stats))

    def commit(self, customer_ids: Sequence[str], states: StateBatch) -> np.ndarray:
        if not customer_ids:
            return np.ones(0, bool)
        placed = self._placed(customer_ids)
        fences = self.fences()
        calls = {g: self._commit_call(g, customer_ids, states, fences, *place) for g, place in placed.items()}
        replies = self._evaluate([(self._commit, keys, args) for keys, args in calls.values()])
        self._unsynced.update(calls)  # whatever fails below, the others were written
        written = np.ones(len(customer_ids), bool)
        for (g, (rows, *_)), reply in zip(placed.items(), replies):
            if isinstance(reply, Exception):
                self._raise_commit_error(g, reply, fences)
            written[rows] = self._written(reply, len(rows))
        return written

    def replicate(self) -> int:
        """On a cluster, wait until every master written since the last call has passed the writes
        to a replica; the worker calls it before a window checkpoint. A failover loses what its
        master had not yet replicated, and a checkpoint must never get ahead of the states it
        covers: the windows it no longer holds would be lost. A checkpoint whose states are lost
        is harmless, as the replay guard skips what survived. Returns the masters that found no
        replica within ``replica_timeout_ms`` (their writes are as safe as a lone Redis's)."""
        if not self.cluster or not self._unsynced:
            return 0
        lonely = wait_for_replicas(self.r, [f"{self._ns[g]}:mark" for g in self._unsynced], self.replica_timeout_ms)
        self._unsynced.clear()
        return lonely

    def _encode(self, states: StateBatch) -> np.ndarray:
        rec = np.zeros(len(states), self.dtype)
        for f in StateBatch.fields():
            rec[f] = getattr(states, f)
        return rec

    def _commit_call(
        self,
        g: int,
        customer_ids: Sequence[str],
        states: StateBatch,
        fences: list[tuple[str, int, int]],
        rows: np.ndarray,
        buckets: list[int],
        runs,
    ) -> tuple[list[str], list]:
        """The commit script's keys and arguments for the ``rows`` of slot group ``g``."""
        enc = [customer_ids[i].encode() for i in rows.tolist()]
        part = states.take(rows)
        rec = self._encode(part)
        # the stored (float16) h, as Lua reads it back when it must undo a rejected row
        sums, counts = CentroidStats.delta(rec["h"].astype(np.float64), np.asarray(part.nearest, np.int64), self.k)
        if not np.isfinite(sums).all():  # one bad state would poison a shared centroid for good
            raise NonFiniteValues("a centroid fold with values that are not finite")
        flips = (np.flatnonzero(rec["segment"] != rec["prev_segment"]) + 1).astype("<i4")
        epochs = np.array([e for _, e, _ in fences], "<f8")
        args = [
            self.hidden_size,
            self.k,
            sums.astype("<f8").tobytes(),
            counts.astype("<f8").tobytes(),
            self.history,
            flips.tobytes(),
            epochs.tobytes(),
            flow_counts(part).astype("<i4").tobytes(),
            self.dtype.itemsize,
            rec.tobytes(),
            runs.astype("<i4").tobytes(),
            b"".join(bytes((len(e),)) + e for e in enc),  # as runs.lua reads them
        ]
        keys = [self.keys.state(b) for b in buckets]
        if self.history:
            keys += [self.keys.trajectory(b) for b in buckets]
        keys += [self.centroid_keys[g], self.sizes_keys[g], self.flows_keys[g], *self._fence_keys(g, fences)]
        return keys, args

    def _raise_commit_error(self, g: int, err: Exception, fences: list[tuple[str, int, int]]) -> None:
        """A fence refusal as :class:`Fenced` naming the partition; anything else as it came."""
        if isinstance(err, redis.ResponseError) and str(err).startswith("LOST "):
            raise StoreLost(f"the partition claim {str(err)[5:]} is gone: Redis lost this deployment's data") from None
        if not (isinstance(err, redis.ResponseError) and str(err).startswith("FENCED ")):
            raise err
        key = str(err).split(" ", 1)[1]
        fenced = dict(zip(self._fence_keys(g, fences), (p for _, _, p in fences)))
        raise Fenced([fenced[key]] if key in fenced else [p for _, _, p in fences], "state") from None

    @staticmethod
    def _written(rejected: bytes, n: int) -> np.ndarray:
        written = np.ones(n, bool)
        written[np.frombuffer(rejected, "<i4") - 1] = False
        return written

    def forget(self, customer_id: str) -> bool:
        """Erase the customer's state and trajectory, adjusting segment sizes and centroids; False if unknown."""
        g = self.group(customer_id)
        keys = [
            self.bucket_key(customer_id),
            self._trajectory_key(customer_id),
            self.centroid_keys[g],
            self.sizes_keys[g],
        ]
        return bool(self._forget(keys=keys, args=[self.hidden_size, customer_id]))

    def _decode(self, rec: np.ndarray) -> StateBatch:
        out = StateBatch.empty(len(rec), self.hidden_size)
        for f in StateBatch.fields():
            getattr(out, f)[:] = rec[f]
        return out

    def _stats(self, sums: bytes | None, counts: bytes | None, version: bytes | None) -> CentroidStats:
        if sums is None:
            raise StoreLost(f"the centroids at {self.centroid_key} are gone: Redis lost this deployment's data")
        # no code path writes centroids that are not k x hidden finite numbers: every window would
        # build on such a value or fail on it, so it is the store's failure, never a record's
        try:
            c = np.frombuffer(counts, "<f8").copy()
            s = np.frombuffer(sums, "<f8").reshape(len(c), self.hidden_size).copy()
            v = int(version)
        except (TypeError, ValueError) as err:
            raise StoreCorrupt(f"the centroids at {self.centroid_key} cannot be read ({err})") from err
        if not (np.isfinite(s).all() and np.isfinite(c).all()):
            raise StoreCorrupt(f"the centroids at {self.centroid_key} hold values that are not finite numbers")
        self.k = len(c)
        return CentroidStats(s, c, v)
