"""What operators and the API read from a deployment's Redis: sizes, flows, trajectories, listings.

Plain reads (HGETALL, HGET, HSCAN), so the API's read-only ACL user can run every one of
them; the commit path (redis_store.py) never calls them. A mixin of the store, whose key
layout (state/keys.py), client and record format it reads with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segstream.core.ports import StateBatch, flows_from_fields


def history_dtype(record: np.dtype, size: int) -> np.dtype:
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


class RedisReads:
    def trajectory(self, customer_id: str) -> StateBatch:
        """The customer's last ``history`` states, oldest first: windows, segments and ``h`` (a
        trajectory entry is the record's header and ``h``, 48 of its 120 bytes at hidden size 12;
        ``c`` and the shadow state only serve the next step)."""
        head = self.dtype.fields["h"][1] + self.dtype["h"].itemsize
        raw = self.r.hget(self._trajectory_key(customer_id), customer_id) or b""
        out = StateBatch.empty(len(raw) // head, self.hidden_size)
        if raw:
            rec = np.frombuffer(raw, history_dtype(self.dtype, head))
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
        keys = [self.keys.state(b) for b in range(self.buckets)]
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
