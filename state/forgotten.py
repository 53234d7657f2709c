"""Customers who were erased, so that a replay of their old events re-creates nothing.

Kept as keyed digests (BLAKE2b), not ids: after an erasure no Redis key or value spells
the customer's id. New consent removes the digest. The record is the deployment's, not a
namespace's (``SEGSTREAM_ERASURE_NAMESPACE``, by default ``segstream``): an erased customer
stays erased in every namespace, consumer group and model version on this Redis, and in a
replay under any of them. Digests an older release kept per namespace are still read.
"""

from __future__ import annotations

import hashlib

import numpy as np
import redis


class ForgottenCustomers:
    def __init__(self, client: redis.Redis, erasure_namespace: str, prefix: str | None = None):
        self.r = client
        self.key = f"{erasure_namespace}:forgotten"
        self._salt = hashlib.blake2b(erasure_namespace.encode(), digest_size=32).digest()
        # 0.7 kept a set per namespace, keyed by the namespace: read, never written
        self._legacy = None if prefix is None or prefix == erasure_namespace else ForgottenCustomers(client, prefix)
        self.digests: frozenset[bytes] = frozenset()

    def digest(self, customer_id: str) -> bytes:
        return hashlib.blake2b(customer_id.encode(), key=self._salt, digest_size=16).digest()

    def add(self, customer_id: str) -> None:
        self.r.sadd(self.key, self.digest(customer_id))

    def restore(self, erased: set[bytes], consented: set[bytes]) -> int:
        """Apply digests read back from the erasure log; returns how many were missing here. Missing
        ones mean Redis lost or rolled back erasures, and maybe holds those customers' data again:
        a purge is then pending (the workers halt) until ``segstream recover`` has erased it."""
        with self.r.pipeline(transaction=True) as pipe:
            if erased:
                pipe.sadd(self.key, *erased)
            if consented:
                pipe.srem(self.key, *consented)
            replies = pipe.execute()
        missing = int(replies[0]) if erased else 0
        if missing:
            self.r.set(self.key + ":purge", missing)
        return missing

    def purge_pending(self) -> bool:
        return bool(self.r.exists(self.key + ":purge"))

    def purged(self) -> None:
        self.r.delete(self.key + ":purge")

    def remove(self, customer_id: str) -> bool:
        """New consent: the customer's events count again from now on."""
        legacy = bool(self._legacy and self._legacy.remove(customer_id))
        return bool(self.r.srem(self.key, self.digest(customer_id))) or legacy

    def refresh(self) -> None:
        """Read the set (small: erasures are rare); the worker does so at each checkpoint."""
        self.digests = frozenset(self.r.smembers(self.key))
        if self._legacy is not None:
            self._legacy.refresh()

    def erased(self, customer_id: str) -> bool:
        return self.digest(customer_id) in self.digests or bool(self._legacy and self._legacy.erased(customer_id))

    def withhold(self, customer_ids: list[str]) -> np.ndarray:
        """True for each event whose customer was erased; free while nobody was."""
        if not self.digests and not (self._legacy and self._legacy.digests):
            return np.zeros(len(customer_ids), bool)
        erased = {c for c in set(customer_ids) if self.erased(c)}
        return np.fromiter((c in erased for c in customer_ids), bool, len(customer_ids))
