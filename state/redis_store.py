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

import zlib
from collections.abc import Sequence

import numpy as np
import redis
from redis.cluster import RedisCluster

from segstream.config import Settings
from segstream.core.ports import CentroidStats, StateBatch, flow_counts, flows_from_fields
from segstream.errors import NonFiniteValues, StoreLost

from .fencing import Fenced

# Lua's struct has no float16: h is decoded by hand where a script must undo a fold
_HALF = """
local function half(b, pos)
  local u = struct.unpack('<H', b, pos)
  local e, m = math.floor(u / 1024) % 32, u % 1024
  local v
  if e == 0 then v = m * 2 ^ -24 elseif e == 31 then v = (m == 0) and math.huge or 0 / 0
  else v = (1024 + m) * 2 ^ (e - 25) end
  if u >= 32768 then return -v end
  return v
end
"""

# the batch's ids, sorted by bucket: one byte of length, then the id; ``runs`` holds each
# bucket's count (int32s), in the order of the bucket keys
_RUNS = """
local pos = 1
local function fields(idblob, cnt)
  local f = {}
  for j = 1, cnt do
    local len = string.byte(idblob, pos)
    f[j] = string.sub(idblob, pos + 1, pos + len)
    pos = pos + len + 1
  end
  return f
end
-- unpack() is bounded by Lua's C stack, so long argument lists go in chunks
local function chunked(cmd, key, list, step)
  local out = {}
  for s = 1, #list, step do
    local r = redis.call(cmd, key, unpack(list, s, math.min(s + step - 1, #list)))
    if type(r) == 'table' then for _, v in ipairs(r) do out[#out + 1] = v end end
  end
  return out
end
"""

_COMMIT = (
    _HALF
    + _RUNS
    + """
-- ARGV: H, K, batch delta of centroid sums (K*H doubles) and counts (K doubles)
--       computed as if every record were written, history length L, the rows
--       whose segment differs from the previous one (int32s, 1-based), the
--       epochs the fence keys must still hold (F doubles), the batch's window
--       flows as if every record were written (int32 quads: window, segment
--       before, segment after, customers), the record size, then every
--       customer's record in one string (one argument, not n: packing and
--       parsing n arguments cost more than the script's work on them), the runs
--       and the ids (as _RUNS reads them). Rows are in bucket order.
--       KEYS: B bucket keys, then if L > 0 the same buckets' trajectory keys, the centroid, segment-size
--       and flow keys, then the F fence keys (state/fencing.py).
-- A fence key that moved refuses the whole batch before anything is written.
-- Rows the guard rejects are taken back out of the delta: rare (replays only),
-- so the common path touches each record's bytes once. Returns the rejected
-- rows (int32s, 1-based): usually none.
local H = tonumber(ARGV[1])
local K = tonumber(ARGV[2])
local dsums, dcounts, L, flips, epochs, flows = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local size, records, runs, ids = tonumber(ARGV[9]), ARGV[10], ARGV[11], ARGV[12]
local F = #epochs / 8
for f = 1, F do
  local fk = KEYS[#KEYS - F + f]
  local held = redis.call('GET', fk)
  if not held then return redis.error_reply('LOST ' .. fk) end
  if tonumber(held) ~= struct.unpack('<d', epochs, f * 8 - 7) then
    return redis.error_reply('FENCED ' .. fk)
  end
end
local B, n, E = #runs / 4, #records / size, 24 + 2 * H
local ck, sk, fl = KEYS[#KEYS - 2 - F], KEYS[#KEYS - 1 - F], KEYS[#KEYS - F]
local unpack4 = struct.unpack
local rejected, nrej, skip, undo_sum, undo_cnt, undo_flow = {}, 0, {}, {}, {}, {}
local i = 0
for k = 1, B do
  local f = fields(ids, unpack4('<i4', runs, k * 4 - 3))
  local olds = chunked('HMGET', KEYS[k], f, 4000)
  local sets, m, trails, tsets, latest = {}, 0, nil, {}, {}
  if L > 0 then trails = chunked('HMGET', KEYS[B + k], f, 4000) end
  for j = 1, #f do
    i = i + 1
    local new, old = string.sub(records, (i - 1) * size + 1, i * size), olds[j]
    if (not old) or unpack4('<i4', old) < unpack4('<i4', new) then
      sets[m + 1], sets[m + 2] = f[j], new
      m = m + 2
      if L > 0 then
        -- the trajectory is one string of its last L entries, oldest first: each the header and
        -- h, what the API draws and what forget un-folds; one field per customer, as the state
        local t = (latest[f[j]] or trails[j] or '') .. string.sub(new, 1, E)
        if #t > L * E then t = string.sub(t, -L * E) end
        tsets[m - 1], tsets[m] = f[j], t
        latest[f[j]] = t  -- a customer twice in the batch: the second entry follows the first
      end
    else
      nrej = nrej + 1
      rejected[nrej] = struct.pack('<i4', i)
      skip[i] = true
      local w, segw, prevw = unpack4('<i4i2i2', new, 1)
      if segw >= 0 then
        local fk = w .. ':' .. prevw .. ':' .. segw
        undo_flow[fk] = (undo_flow[fk] or 0) + 1
      end
      local seg = unpack4('<i2', new, 11)  -- the nearest centroid: the fold label
      if seg >= 0 then
        undo_cnt[seg] = (undo_cnt[seg] or 0) + 1
        for d = 0, H - 1 do
          undo_sum[seg * H + d] = (undo_sum[seg * H + d] or 0) + half(new, 25 + d * 2)
        end
      end
    end
  end
  if m > 0 then
    chunked('HSET', KEYS[k], sets, 4000)
    if L > 0 then chunked('HSET', KEYS[B + k], tsets, 4000) end
  end
end
for f = 1, #flips / 4 do
  local i = struct.unpack('<i4', flips, f * 4 - 3)
  if not skip[i] then
    local seg, prev = struct.unpack('<i2i2', records, (i - 1) * size + 5)
    if seg >= 0 then redis.call('HINCRBY', sk, seg, 1) end
    if prev >= 0 then redis.call('HINCRBY', sk, prev, -1) end
  end
end
for q = 1, #flows / 16 do
  local w, prevw, segw, cnt = struct.unpack('<i4i4i4i4', flows, q * 16 - 15)
  local f = w .. ':' .. prevw .. ':' .. segw
  cnt = cnt - (undo_flow[f] or 0)
  if cnt ~= 0 then redis.call('HINCRBY', fl, f, cnt) end
end
local any = false
for j = 0, K - 1 do
  if struct.unpack('<d', dcounts, j * 8 + 1) - (undo_cnt[j] or 0) > 0 then any = true break end
end
if any then
  local sums = redis.call('HGET', ck, 'sums')
  local counts = redis.call('HGET', ck, 'counts')
  local out, outc = {}, {}
  for j = 0, K * H - 1 do
    local v = struct.unpack('<d', sums, j * 8 + 1) + struct.unpack('<d', dsums, j * 8 + 1) - (undo_sum[j] or 0)
    out[j + 1] = struct.pack('<d', v)
  end
  for j = 0, K - 1 do
    local v = struct.unpack('<d', counts, j * 8 + 1) + struct.unpack('<d', dcounts, j * 8 + 1) - (undo_cnt[j] or 0)
    outc[j + 1] = struct.pack('<d', v)
  end
  redis.call('HSET', ck, 'sums', table.concat(out), 'counts', table.concat(outc))
  redis.call('HINCRBY', ck, 'version', 1)
end
return table.concat(rejected, '', 1, nrej)
"""
)

_FORGET = (
    _HALF
    + """
-- KEYS: bucket key, trajectory bucket key, centroid key, segment-size key. ARGV: H, customer id.
-- Takes the customer out of the segment sizes and takes back the centroid folds we can
-- attribute to them (the stored trajectory, or the current state without one), then
-- deletes both; in one atomic step, so the worker's commits never see half of it.
-- Returns 1 if there was a state, else 0.
local H = tonumber(ARGV[1])
local rec = redis.call('HGET', KEYS[1], ARGV[2])
local trail = redis.call('HGET', KEYS[2], ARGV[2]) or ''
local hist, E = {}, 24 + 2 * H
for p = 1, #trail, E do hist[#hist + 1] = string.sub(trail, p, p + E - 1) end
if not rec and #hist == 0 then return 0 end
if rec then
  local seg = struct.unpack('<i2', rec, 5)
  if seg >= 0 then redis.call('HINCRBY', KEYS[4], seg, -1) end
end
local folds = hist
if #folds == 0 then folds = {rec} end
local sums = redis.call('HGET', KEYS[3], 'sums')
local counts = redis.call('HGET', KEYS[3], 'counts')
if sums then
  local dsum, dcnt, any = {}, {}, false
  for _, r in ipairs(folds) do
    local j = struct.unpack('<i2', r, 11)
    if j >= 0 then
      any = true
      dcnt[j] = (dcnt[j] or 0) + 1
      for d = 0, H - 1 do dsum[j * H + d] = (dsum[j * H + d] or 0) + half(r, 25 + d * 2) end
    end
  end
  if any then
    local K = #counts / 8
    local out, outc = {}, {}
    for j = 0, K * H - 1 do out[j + 1] = struct.pack('<d', struct.unpack('<d', sums, j * 8 + 1) - (dsum[j] or 0)) end
    for j = 0, K - 1 do outc[j + 1] = struct.pack('<d', struct.unpack('<d', counts, j * 8 + 1) - (dcnt[j] or 0)) end
    redis.call('HSET', KEYS[3], 'sums', table.concat(out), 'counts', table.concat(outc))
    redis.call('HINCRBY', KEYS[3], 'version', 1)
  end
end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
"""
)

_RAISE = """
-- KEYS[1]: a fence copy in one slot group; ARGV[1]: the epoch just claimed. Never lowered,
-- so a slow claimer of an older epoch cannot undo a newer claim.
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
"""

_INIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'sums', ARGV[1], 'counts', ARGV[2], 'version', 0)
  return 1
end
return 0
"""


# 2: change statistic and emission state in the header; 3: the shadow state; 4: float16 h and c,
# records as fields of hash buckets
RECORD_FORMAT = 4


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
            ("ewma", "<f2", (5,)),
            ("h", "<f2", (hidden_size,)),
            ("c", "<f2", (hidden_size,)),
            ("shadow_h", "<f2", (hidden_size,)),
            ("shadow_c", "<f2", (hidden_size,)),
        ]
    )


def _history_dtype(record: np.dtype, size: int) -> np.dtype:
    """The fields of ``record`` within its first ``size`` bytes, at their offsets."""
    names = [n for n in record.names if record.fields[n][1] + record[n].itemsize <= size]
    return np.dtype(
        {
            "names": names,
            "formats": [record[n] for n in names],
            "offsets": [record.fields[n][1] for n in names],
            "itemsize": size,
        }
    )


class RedisStateStore:
    def __init__(
        self,
        client: redis.Redis,
        hidden_size: int,
        model_version: str,
        prefix: str = "seg",
        history: int = 0,
        groups: int = 16,
        buckets: int = 256,
    ):
        self.r = client
        self.hidden_size = hidden_size
        self.dtype = record_dtype(hidden_size)
        self._empty = self._encode(StateBatch.empty(1, hidden_size)).tobytes()  # a customer never seen
        self.cluster = isinstance(client, RedisCluster)
        self.groups = max(1, groups) if self.cluster else 1
        self.buckets = max(1, buckets)
        # states only make sense for the model that wrote them, in the record layout that wrote them
        ns = f"{prefix}:{model_version[-10:]}:r{RECORD_FORMAT}"
        # a single Redis keeps the names it always had; a cluster's are hash-tagged per group
        # (the tag after the namespace, so ACL key patterns like ``~segstream:*`` still match)
        self._ns = [f"{ns}:{{g{g}}}" for g in range(self.groups)] if self.cluster else [ns]
        # the bucket count is in the name: another count places customers elsewhere
        self._bucket_prefix = [f"{n}:sb{self.buckets}:" for n in self._ns]
        self._trajectory_prefix = [f"{n}:tb{self.buckets}:" for n in self._ns]
        self.history = history  # windows of trajectory kept per customer (0: none)
        self.centroid_keys = [f"{n}:centroids" for n in self._ns]
        self.sizes_keys = [f"{n}:sizes" for n in self._ns]
        self.flows_keys = [f"{n}:flows" for n in self._ns]  # window:before:after -> customers (aggregates only)
        self.centroid_key = self.centroid_keys[0]
        self._commit = client.register_script(_COMMIT)
        self._init = client.register_script(_INIT)
        self._forget = client.register_script(_FORGET)
        self._raise = client.register_script(_RAISE)
        self.k = 0
        self._unsynced: set[int] = set()  # slot groups written since the last replicate()
        self.replica_timeout_ms = 1000
        # (epoch key, epoch, partition) the next commits are made under: set by the
        # worker's core per batch, empty where nobody else can own the customers
        self.fences: list[tuple[str, int, int]] = []

    @classmethod
    def for_deployment(
        cls, client: redis.Redis, settings: Settings, hidden_size: int, model_version: str
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
        )

    def bucket(self, customer_id: str) -> int:
        return zlib.crc32(customer_id.encode()) % self.buckets

    def group(self, customer_id: str) -> int:
        return self.bucket(customer_id) % self.groups

    def _key(self, prefixes: list[str], bucket: int) -> str:
        """A state (``_bucket_prefix``) or trajectory (``_trajectory_prefix``) hash, in its slot group."""
        return f"{prefixes[bucket % self.groups]}{bucket}"

    def bucket_key(self, customer_id: str) -> str:
        """The hash whose field ``customer_id`` holds the customer's record."""
        return self._key(self._bucket_prefix, self.bucket(customer_id))

    def _trajectory_key(self, customer_id: str) -> str:
        return self._key(self._trajectory_prefix, self.bucket(customer_id))

    def _pipeline(self):
        """One request per node: a cluster's pipeline routes each command to its key's node."""
        return self.r.pipeline() if self.cluster else self.r.pipeline(transaction=False)

    def _placed(self, customer_ids: Sequence[str]) -> dict[int, tuple[np.ndarray, list[int], np.ndarray]]:
        """Per slot group: its rows of the batch sorted by bucket (stable, so a customer twice
        keeps its order), its buckets and each bucket's count of rows."""
        b = np.fromiter((zlib.crc32(c.encode()) for c in customer_ids), np.int64, len(customer_ids)) % self.buckets
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

    def _fence_keys(self, g: int) -> list[str]:
        return [f"{self._ns[g]}:fence:{k}" if self.cluster else k for k, _, _ in self.fences]

    def load(self, customer_ids: Sequence[str]) -> tuple[StateBatch, CentroidStats]:
        """One HMGET per bucket, all in one pipeline (one request per node): a plain read, so the
        API's read-only user can do it, and cheaper for Redis than a script that loops."""
        if not customer_ids:
            return StateBatch.empty(0, self.hidden_size), self.centroid_stats()
        pipe = self._pipeline()
        runs = []
        for rows, buckets, counts in self._placed(customer_ids).values():
            for b, run in zip(buckets, np.split(rows, np.cumsum(counts)[:-1])):
                pipe.hmget(self._key(self._bucket_prefix, b), [customer_ids[i] for i in run.tolist()])
                runs.append(run)
        for key in self.centroid_keys:
            pipe.hmget(key, "sums", "counts", "version")
        replies = pipe.execute()
        empty = self._empty
        found = b"".join(v if v is not None else empty for values in replies[: len(runs)] for v in values)
        rec = np.empty(len(customer_ids), self.dtype)
        rec[np.concatenate(runs)] = np.frombuffer(found, self.dtype)
        return self._decode(rec), self._merged(replies[len(runs) :])

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
        calls = {g: self._commit_call(g, customer_ids, states, *place) for g, place in placed.items()}
        replies = self._evaluate([(self._commit, keys, args) for keys, args in calls.values()])
        self._unsynced.update(calls)  # whatever fails below, the others were written
        written = np.ones(len(customer_ids), bool)
        for (g, (rows, *_)), reply in zip(placed.items(), replies):
            if isinstance(reply, Exception):
                self._raise_commit_error(g, reply)
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
        # WAIT counts the writes of its own connection: a marker written on the same connection,
        # after the states (one thread, ordered replication), stands for all of them
        nodes = {}
        for g in self._unsynced:
            mark = f"{self._ns[g]}:mark"
            nodes.setdefault(self.r.get_node_from_key(mark).name, mark)
        lonely = 0
        for name, mark in nodes.items():
            pipe = self.r.get_redis_connection(self.r.get_node(node_name=name)).pipeline(transaction=False)
            pipe.incr(mark)
            pipe.execute_command("WAIT", 1, self.replica_timeout_ms)
            lonely += pipe.execute()[1] < 1
        self._unsynced.clear()
        return lonely

    def _encode(self, states: StateBatch) -> np.ndarray:
        rec = np.zeros(len(states), self.dtype)
        for f in StateBatch.fields():
            rec[f] = getattr(states, f)
        return rec

    def _commit_call(
        self, g: int, customer_ids: Sequence[str], states: StateBatch, rows: np.ndarray, buckets: list[int], runs
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
        epochs = np.array([e for _, e, _ in self.fences], "<f8")
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
            b"".join(bytes((len(e),)) + e for e in enc),  # as _RUNS reads them
        ]
        keys = [self._key(self._bucket_prefix, b) for b in buckets]
        if self.history:
            keys += [self._key(self._trajectory_prefix, b) for b in buckets]
        keys += [self.centroid_keys[g], self.sizes_keys[g], self.flows_keys[g], *self._fence_keys(g)]
        return keys, args

    def _raise_commit_error(self, g: int, err: Exception) -> None:
        """A fence refusal as :class:`Fenced` naming the partition; anything else as it came."""
        if isinstance(err, redis.ResponseError) and str(err).startswith("LOST "):
            raise StoreLost(f"the partition claim {str(err)[5:]} is gone: Redis lost this deployment's data") from None
        if not (isinstance(err, redis.ResponseError) and str(err).startswith("FENCED ")):
            raise err
        key = str(err).split(" ", 1)[1]
        fenced = dict(zip(self._fence_keys(g), (p for _, _, p in self.fences)))
        raise Fenced([fenced[key]] if key in fenced else [p for _, _, p in self.fences], "state") from None

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
        c = np.frombuffer(counts, "<f8").copy()
        self.k = len(c)
        return CentroidStats(np.frombuffer(sums, "<f8").reshape(len(c), -1).copy(), c, int(version))

    def trajectory(self, customer_id: str) -> StateBatch:
        """The customer's last ``history`` states, oldest first: windows, segments and ``h`` (a
        trajectory entry is the record's header and ``h``, 48 of its 120 bytes at hidden size 12;
        ``c`` and the shadow state only serve the next step)."""
        head = self.dtype.fields["h"][1] + self.dtype["h"].itemsize
        raw = self.r.hget(self._trajectory_key(customer_id), customer_id) or b""
        out = StateBatch.empty(len(raw) // head, self.hidden_size)
        if raw:
            rec = np.frombuffer(raw, _history_dtype(self.dtype, head))
            for f in rec.dtype.names:
                getattr(out, f)[:] = rec[f]
        return out

    def segment_sizes(self) -> dict[int, int]:
        """Customers currently in each segment, kept by the commit script."""
        sizes: dict[int, int] = {}
        for key in self.sizes_keys:
            for k, v in self.r.hgetall(key).items():
                sizes[int(k)] = sizes.get(int(k), 0) + int(v)
        return sizes

    def window_flows(self) -> dict[int, dict[tuple[int, int], int]]:
        """Per window, customers by (segment before, segment after) among those whose window was
        applied and who have a segment: sizes per window and the flow between them."""
        return flows_from_fields(
            (k.decode(), int(v)) for key in self.flows_keys for k, v in self.r.hgetall(key).items()
        )

    def segments(self, customer_ids: Sequence[str] | None = None) -> dict[str, int]:
        """Stored customers' segments: of these ids (unknown ones -1), or of every customer (O(customers))."""
        if customer_ids is None:
            customer_ids = self.customer_ids()
        if not customer_ids:
            return {}
        states, _ = self.load(customer_ids)
        return {c: int(s) for c, s in zip(customer_ids, states.segment)}

    def customer_ids(self, limit: int | None = None, prefix: str = "") -> list[str]:
        """Stored customers whose id starts with ``prefix``, bucket by bucket (operator and search
        use; O(customers)). All of them: every bucket's fields, pipelined. A search or a first
        page: HSCAN, so Redis filters by the prefix and a ``limit`` stops early."""
        keys = [self._key(self._bucket_prefix, b) for b in range(self.buckets)]
        if limit is None and not prefix:
            pipe = self._pipeline()
            for key in keys:
                pipe.hkeys(key)
            return [f.decode() for fields in pipe.execute() for f in fields]
        ids: list[str] = []
        glob = "".join("\\" + ch if ch in "*?[]\\^" else ch for ch in prefix) + "*"
        for key in keys:
            for field, _ in self.r.hscan_iter(key, match=glob, count=10_000):
                ids.append(field.decode())
                if limit is not None and len(ids) >= limit:
                    return ids
        return ids
