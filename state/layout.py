"""Which state layout a deployment's checkpoints were written for.

A window checkpoint is per deployment (its Redis prefix); the states it counts live under a
layout: the model's version, the record format, the bucket count and, on a cluster, the slot
groups (state/keys.py), and count windows of one length. A worker started with another
artefact or another ``SEGSTREAM_REDIS_STATE_BUCKETS`` finds no state under its own layout, yet
the checkpoints say where to resume: it would re-warm every customer from there, their
history gone, and look healthy. One started with another window length numbers windows
otherwise: every window would fall at or before its customer's last one and be dropped as
a replay. The first worker records its layout; a worker with another one halts.
"""

from __future__ import annotations

import redis

from segstream.config import Settings
from segstream.errors import LayoutChanged

from .keys import StateKeys


class StateLayout:
    def __init__(self, client: redis.Redis, prefix: str, layout: str):
        self.r = client
        self.key = f"{prefix}:layout"
        self.layout = layout

    @classmethod
    def for_deployment(cls, client: redis.Redis, settings: Settings, keys: StateKeys) -> StateLayout:
        months, seconds = settings.window_months, settings.window_seconds
        window = f"w{months}m" if months > 0 else f"w{seconds}s"
        return cls(client, settings.redis_prefix, f"{keys.layout}:{window}")

    def recorded(self) -> str | None:
        raw = self.r.get(self.key)
        return None if raw is None else raw.decode()

    def check(self) -> None:
        """Record this layout if none is (a new deployment, or one from before 0.8.5, whose states are
        taken to be where this worker looks); raise :class:`LayoutChanged` if another one is."""
        if self.r.set(self.key, self.layout, nx=True):
            return
        recorded = self.recorded()
        if recorded is not None and recorded != self.layout:
            raise LayoutChanged(
                f"this deployment's checkpoints count states kept under {recorded!r}; this worker keeps them "
                f"under {self.layout!r} (another model artefact, SEGSTREAM_REDIS_STATE_BUCKETS, cluster or window "
                "length) and holds none: start it with the old settings, run the new model as its own deployment (README, "
                "blue/green), or `segstream recover --rebuild` to rebuild every state under the new layout"
            )

    def record(self) -> None:
        """Make this layout the deployment's (``segstream recover --rebuild``, after the rebuild's wipe)."""
        self.r.set(self.key, self.layout)
