"""Which state layout a deployment's checkpoints were written for.

A window checkpoint is per deployment (its Redis prefix); the states it counts live under a
layout: the model's version, the record format, the bucket count and, on a cluster, the slot
groups (state/keys.py). A worker started with another artefact or another
``SEGSTREAM_REDIS_STATE_BUCKETS`` finds no state under its own layout, yet the checkpoints
say where to resume: it would re-warm every customer from there, their history gone, and
look healthy. The first worker records its layout; a worker with another one halts.
"""

from __future__ import annotations

import redis

from segstream.errors import LayoutChanged


class StateLayout:
    def __init__(self, client: redis.Redis, prefix: str, layout: str):
        self.r = client
        self.key = f"{prefix}:layout"
        self.layout = layout

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
                f"under {self.layout!r} (another model artefact, SEGSTREAM_REDIS_STATE_BUCKETS or cluster) and "
                "holds none: start it with the old settings, run the new model as its own deployment (README, "
                "blue/green), or `segstream recover --rebuild` to rebuild every state under the new layout"
            )

    def record(self) -> None:
        """Make this layout the deployment's (``segstream recover --rebuild``, after the rebuild's wipe)."""
        self.r.set(self.key, self.layout)
