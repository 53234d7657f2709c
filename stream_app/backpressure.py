"""The core's memory bound: when the worker stops fetching, and when it starts again.

Open windows (and their dedup keys) grow with the customers a month brings, not with the
stream's rate; at ``max_open_windows`` or ``max_core_memory_mb`` the ingest loop pauses
every partition (health 503 ``memory``, ``segstream_memory_bound`` 1, one log line) and
resumes once closing windows (the wall clock closing a quiet live month) brings the core
back under: it never grows until the kernel kills it.
"""

from __future__ import annotations

import logging

from segstream.config import Settings

from . import metrics
from .batch import BATCHES_AHEAD
from .health import Health

log = logging.getLogger("segstream.worker")


RECORD_BYTES = 1024  # what one more open window holds beyond its array row (dict, list, dedup keys)


class MemoryBound:
    def __init__(self, settings: Settings, health: Health):
        self.settings = settings
        self.health = health
        self.reached = False

    def check(self, open_windows: int, resident_bytes: int, headroom_bytes: int = 0) -> bool | None:
        """True when the bound is newly reached, False when newly left, None when nothing changed.

        The figures are the core's after the batch before the one it holds, while the next one is
        being fetched and a checkpoint may be due: so it keeps the headroom for ``BATCHES_AHEAD``
        batches (their windows, an array that doubles) and the checkpoint's rows, and the core stays
        under the bound rather than passing it by the batches in flight."""
        s = self.settings
        ahead = BATCHES_AHEAD * s.batch_size  # records that may still land after this check
        headroom = headroom_bytes + ahead * RECORD_BYTES
        over = open_windows + ahead > s.max_open_windows or resident_bytes + headroom >= s.max_core_memory_mb << 20
        if over == self.reached:
            return None
        self.reached = over
        metrics.MEMORY_BOUND.set(int(over))
        if over:
            why = (
                f"{open_windows} open windows, core at {resident_bytes >> 20} MB "
                f"(bounds {s.max_open_windows}, {s.max_core_memory_mb} MB)"
            )
            log.error("memory bound reached: %s; fetching paused until windows close (add partitions and workers)", why)
            self.health.set("memory", why)
        else:
            log.warning("back under the memory bound: fetching again")
            self.health.clear("memory")
        return over
