"""Where a deployment's records live in Redis: the key layout, defined once.

The store, the eraser, the API's reads and the benches all place a customer with these
helpers. A customer's record is a field of one of ``buckets`` state hashes (and of as
many trajectory hashes), chosen by CRC-32 of the id; on a Redis Cluster the buckets are
spread over ``groups`` hash-tagged slot groups, each with its own centroid sums, segment
sizes, window flows and copies of the partitions' fence epochs::

    <prefix>:<model version>:r<format>[:{g<group>}]:sb<buckets>:<bucket>   customer -> state record
    <prefix>:<model version>:r<format>[:{g<group>}]:tb<buckets>:<bucket>   customer -> trajectory
    <prefix>:<model version>:r<format>[:{g<group>}]:centroids|sizes|flows  the group's shared statistics
    <prefix>:<model version>:r<format>[:{g<group>}]:fence:<epoch key>      a cluster's copy of a fence
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# 2: change statistic and emission state in the header; 3: the shadow state; 4: float16 h and c,
# records as fields of hash buckets
RECORD_FORMAT = 4
_BUCKET_KEY = re.compile(r"^(?P<ns>.+):(?P<kind>sb|tb)(?P<count>\d+):(?P<bucket>\d+)$")


def glob_literal(text: str) -> str:
    """``text`` as a Redis glob that matches only itself."""
    return re.sub(r"([*?\[\]\\^])", r"\\\1", text)


def bucket_of(customer_id: str, buckets: int) -> int:
    return zlib.crc32(customer_id.encode()) % buckets


def buckets_of(customer_ids: Sequence[str], buckets: int) -> np.ndarray:
    return np.fromiter((zlib.crc32(c.encode()) for c in customer_ids), np.int64, len(customer_ids)) % buckets


def parse_bucket_key(key: str) -> tuple[str, int, int] | None:
    """(``sb`` or ``tb``, the bucket count, the bucket) of a state or trajectory hash's name."""
    m = _BUCKET_KEY.match(key)
    return None if m is None else (m["kind"], int(m["count"]), int(m["bucket"]))


def holds(key: str, customer_id: str) -> bool:
    """Whether the bucket hash ``key`` is the one (of its own bucket count) that would hold the customer:
    the eraser finds a customer's records under other model versions and bucket counts this way."""
    parsed = parse_bucket_key(key)
    return parsed is not None and bucket_of(customer_id, parsed[1]) == parsed[2]


@dataclass(frozen=True)
class StateKeys:
    prefix: str
    model_version: str
    cluster: bool = False
    groups: int = 1
    buckets: int = 256

    @property
    def namespaces(self) -> list[str]:
        """One per slot group: a single Redis keeps the names it always had; a cluster's are hash-tagged
        per group (the tag after the namespace, so ACL key patterns like ``~segstream:*`` still match)."""
        ns = f"{self.prefix}:{self.model_version[-10:]}:r{RECORD_FORMAT}"
        return [f"{ns}:{{g{g}}}" for g in range(self.groups)] if self.cluster else [ns]

    @property
    def layout(self) -> str:
        """Everything that decides where a customer's state lives: states under another layout are
        invisible to this one (state/layout.py)."""
        return f"{self.namespaces[0]}:sb{self.buckets}" + (f":g{self.groups}" if self.cluster else "")

    def group_of(self, bucket: int) -> int:
        return bucket % self.groups

    def state(self, bucket: int) -> str:
        return f"{self.namespaces[self.group_of(bucket)]}:sb{self.buckets}:{bucket}"

    def trajectory(self, bucket: int) -> str:
        return f"{self.namespaces[self.group_of(bucket)]}:tb{self.buckets}:{bucket}"

    def per_group(self, name: str) -> list[str]:
        """``centroids``, ``sizes`` or ``flows`` of every slot group."""
        return [f"{n}:{name}" for n in self.namespaces]

    def fence(self, group: int, epoch_key: str) -> str:
        """Where the commit script reads a partition's epoch: the key itself on one Redis, a copy in
        the group's slot on a cluster (a script may touch one slot only)."""
        return f"{self.namespaces[group]}:fence:{epoch_key}" if self.cluster else epoch_key
