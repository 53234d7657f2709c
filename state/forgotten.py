"""Customers who were erased, so that a replay of their old events re-creates nothing.

Kept as keyed digests (BLAKE2b, keyed by the namespace), not ids: after an erasure no
Redis key or value spells the customer's id. New consent removes the digest.
"""

from __future__ import annotations

import hashlib

import numpy as np
import redis


class ForgottenCustomers:
    def __init__(self, client: redis.Redis, prefix: str):
        self.r = client
        self.key = f"{prefix}:forgotten"
        self._salt = hashlib.blake2b(prefix.encode(), digest_size=32).digest()
        self.digests: frozenset[bytes] = frozenset()

    def digest(self, customer_id: str) -> bytes:
        return hashlib.blake2b(customer_id.encode(), key=self._salt, digest_size=16).digest()

    def add(self, customer_id: str) -> None:
        self.r.sadd(self.key, self.digest(customer_id))

    def remove(self, customer_id: str) -> bool:
        """New consent: the customer's events count again from now on."""
        return bool(self.r.srem(self.key, self.digest(customer_id)))

    def refresh(self) -> None:
        """Read the set (small: erasures are rare); the worker does so at each checkpoint."""
        self.digests = frozenset(self.r.smembers(self.key))

    def withhold(self, customer_ids: list[str]) -> np.ndarray:
        """True for each event whose customer was erased; free while nobody was."""
        if not self.digests:
            return np.zeros(len(customer_ids), bool)
        erased = {c for c in set(customer_ids) if self.digest(c) in self.digests}
        return np.fromiter((c in erased for c in customer_ids), bool, len(customer_ids))
