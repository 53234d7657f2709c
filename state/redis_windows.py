"""Checkpoints of a partition's open windows and read position, in Redis.

A worker keeps open windows in memory and, after each batch's outputs are
published, writes what changed plus the last offset it consumed in one MULTI.
After a crash or a rebalance the next owner of the partition restores the
windows and skips events at or below that offset, so every event is counted
once whatever Kafka re-delivers.
"""

from __future__ import annotations

import math
import struct
from typing import Iterable

import numpy as np
import redis

from segstream.core.windows import OpenWindow


def encode_window(w: OpenWindow) -> bytes:
    """n (u32), income (f64, NaN = unknown), spend (K f64), event-id digests (u64 each)."""
    return struct.pack(f"<Id{len(w.spend)}d{len(w.ids)}Q", w.n, math.nan if w.income is None else w.income, *w.spend, *w.ids)


def decode_window(raw: bytes, n_categories: int) -> OpenWindow:
    n = int(np.frombuffer(raw, "<u4", 1)[0])
    income = float(np.frombuffer(raw, "<f8", 1, 4)[0])
    spend = np.frombuffer(raw, "<f8", n_categories, 12).tolist()
    ids = set(np.frombuffer(raw, "<u8", offset=12 + 8 * n_categories).tolist())
    return OpenWindow(spend=spend, n=n, income=None if math.isnan(income) else income, ids=ids)


class WindowCheckpoints:
    def __init__(self, client: redis.Redis, n_categories: int, prefix: str = "seg"):
        self.r = client
        self.n_categories = n_categories
        self.prefix = prefix

    def _keys(self, topic: str, partition: int) -> tuple[str, str]:
        return f"{self.prefix}:w:{topic}:{partition}", f"{self.prefix}:p:{topic}:{partition}"

    def save(
        self,
        topic: str,
        partition: int,
        offset: int,
        max_event_time: float,
        upserts: Iterable[tuple[int, str, OpenWindow]],
        closed: Iterable[tuple[int, str]],
    ) -> None:
        wkey, pkey = self._keys(topic, partition)
        pipe = self.r.pipeline(transaction=True)
        fields = {f"{i}:{cid}": encode_window(w) for i, cid, w in upserts}
        if fields:
            pipe.hset(wkey, mapping=fields)
        gone = [f"{i}:{cid}" for i, cid in closed]
        if gone:
            pipe.hdel(wkey, *gone)
        pipe.hset(pkey, mapping={"offset": offset, "max_event_time": repr(max_event_time)})
        pipe.execute()

    def load(self, topic: str, partition: int) -> tuple[int, float, list[tuple[int, str, OpenWindow]]]:
        """(last offset consumed or -1, max event time, open windows)."""
        wkey, pkey = self._keys(topic, partition)
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(wkey)
        pipe.hmget(pkey, "offset", "max_event_time")
        windows, (offset, met) = pipe.execute()
        out = []
        for field, raw in windows.items():
            idx, cid = field.decode().split(":", 1)
            out.append((int(idx), cid, decode_window(raw, self.n_categories)))
        return (-1 if offset is None else int(offset)), (float("-inf") if met is None else float(met)), out
