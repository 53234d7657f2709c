"""Forgetting a customer everywhere segstream keeps them, and telling downstream copies to forget.

Used by ``segstream forget`` and the API's admin ``DELETE /api/customers/{id}``. What
is erased, and what is not, is listed in docs/security.md.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import redis
from kafka.errors import KafkaError

from segstream.config import Settings
from segstream.core.events import CUSTOMER_ID_PATTERN_RE
from segstream.errors import ConfigError, SystemFailure
from segstream.state.forgotten import ForgottenCustomers
from segstream.state.keys import glob_literal, holds
from segstream.state.redis_store import RedisStateStore
from segstream.state.redis_windows import WindowCheckpoints

from . import erasure_log

log = logging.getLogger("segstream.erasure")


@dataclass
class Erasure:
    customer_id: str
    state: bool  # a state (and trajectory) was erased, segment sizes and centroids adjusted
    window_rows: int  # open-window checkpoint rows removed
    other_keys: int  # records of other model versions removed
    tombstone: bool  # a tombstone went to the segment-changes topic
    logged: bool = False  # the erasure is on the erasures topic, so a lost Redis gets it back (erasure_log.py)


class Eraser:
    def __init__(self, settings: Settings, client: redis.Redis, store: RedisStateStore):
        self.settings = settings
        self.r = client
        self.store = store
        self.checkpoints = WindowCheckpoints(client, 0, prefix=settings.redis_prefix)
        self.forgotten = ForgottenCustomers(client, settings.erasure_namespace, settings.redis_prefix)
        self._up: bool | None = None
        self._producer = None

    def forget(self, customer_id: str, publish: bool = True) -> Erasure:
        if not re.fullmatch(CUSTOMER_ID_PATTERN_RE, customer_id):
            raise ConfigError(f"{customer_id[:70]!r} is not a customer id (A-Za-z0-9._:@-, at most 64)")
        # first withhold new events, so a running worker stops re-creating what we erase
        self.forgotten.add(customer_id)
        state = self.store.forget(customer_id)
        rows = self.checkpoints.forget(customer_id)
        logged = tombstone = False
        if publish and self._broker_up():
            entry = erasure_log.entry(self.forgotten.digest(customer_id), True, time.time())
            logged = self._publish(self.settings.erasures_topic, *entry)
            # a null value keyed by the customer: compacted copies of the changes topic drop the key
            tombstone = self._publish(self.settings.topic_changes, customer_id.encode(), None)
        return Erasure(customer_id, state, rows, self._elsewhere(customer_id), tombstone, logged)

    def _elsewhere(self, customer_id: str) -> int:
        """The customer's records under other model versions and record formats: their own keys
        (``:s:`` and ``:h:`` before format 4) and fields of the state and trajectory hashes
        (``:sb<count>:<bucket>``, ``:tb<count>:<bucket>``), whichever bucket count placed them.
        One scan of the keyspace; erasures are rare."""
        prefix, removed = self.settings.redis_prefix, 0
        literal = glob_literal(customer_id)  # an id never becomes a pattern
        for pattern in (f"{glob_literal(prefix)}:*:s:{literal}", f"{glob_literal(prefix)}:*:h:{literal}"):
            for key in self.r.scan_iter(match=pattern, count=1000):
                removed += self.r.delete(key)
        for key in self.r.scan_iter(match=f"{glob_literal(prefix)}:*:?b*:*", count=10_000):
            if holds(key.decode(), customer_id):
                removed += self.r.hdel(key, customer_id)
        return removed

    def consent(self, customer_id: str, publish: bool = True) -> bool:
        """New consent: from now on the customer's events count again, also after a lost Redis."""
        entry = erasure_log.entry(self.forgotten.digest(customer_id), False, time.time())
        if publish and not (self._broker_up() and self._publish(self.settings.erasures_topic, *entry)):
            raise SystemFailure(
                "the consent did not reach the erasures topic; nothing changed: run it again once the broker is reachable"
            )
        return self.forgotten.remove(customer_id)

    def inactive(self, windows: int) -> list[str]:
        """Customers with no window in the last ``windows`` windows, by event time: the newest
        window any customer reached, so a replay of old data does not expire everybody."""
        ids = self.store.customer_ids()
        if not ids:
            return []
        states, _ = self.store.load(ids)
        newest = int(states.last_window.max())
        return [c for c, w in zip(ids, states.last_window.tolist()) if w <= newest - windows]

    def purge(self) -> int:
        """Erase again every erased customer whose data Redis holds (a snapshot from before the
        erasure, restored): ids are found by the keyed digest of every field of the namespace's
        hashes (states, trajectories, open windows, any model version). Returns how many."""
        self.forgotten.refresh()
        found: set[str] = set()
        for key in self.r.scan_iter(match=f"{glob_literal(self.settings.redis_prefix)}:*", count=10_000, _type="hash"):
            found.update(f.decode() for f in self.r.hkeys(key) if self.forgotten.erased(f.decode(errors="replace")))
        for customer_id in sorted(found):
            self.forget(customer_id, publish=False)
        self.forgotten.purged()
        return len(found)

    def _broker_up(self) -> bool:
        """Asked once per eraser: one line at once when the broker is down, not 30 s of client errors."""
        from .kafka_config import verify

        if self._up is None:
            try:
                verify(self.settings, timeout_s=5.0)
                self._up = True
            except ConfigError as err:
                log.warning("nothing published to the broker: %s", err)
                self._up = False
        return self._up

    def _publish(self, topic: str, key: bytes, value: bytes | None) -> bool:
        """One record, acknowledged by every in-sync replica; one producer per eraser (a retention sweep
        erases thousands)."""
        from kafka import KafkaProducer  # here: the API imports this module only to erase

        from .kafka_config import ensure_topics, kafka_python_options

        try:
            if self._producer is None:
                ensure_topics(self.settings)  # the erasures topic must be compacted before its first record
                self._producer = KafkaProducer(**kafka_python_options(self.settings), acks="all")
            self._producer.send(topic, key=key, value=value).get(timeout=30)
            return True
        except KafkaError as err:  # also raised by the constructor when no broker answers
            log.warning("not published to %s (%s): erase again once the broker is reachable", topic, err)
            return False

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None
