"""What the worker's /healthz says, and why: the problems it knows of, by name.

Health is the absence of known problems plus two live probes (Redis answers a ping,
the broker answers a metadata request), each bounded by a short timeout, so a health
check answers within seconds whatever is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from . import metrics


@dataclass
class Health:
    problems: dict[str, str] = field(default_factory=dict)  # name -> why, e.g. "partition 3" -> "store_lost: ..."

    def set(self, name: str, why: str) -> None:
        self.problems[name] = why

    def clear(self, name: str) -> None:
        self.problems.pop(name, None)

    def clear_prefix(self, prefix: str) -> None:
        for name in [n for n in self.problems if n.startswith(prefix)]:
            del self.problems[name]

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self, redis_up: bool, broker_up: bool) -> tuple[bool, dict]:
        problems = dict(self.problems)
        if not redis_up:
            problems["redis"] = "unreachable"
        if not broker_up:
            problems["broker"] = "unreachable"
        return not problems, {"ok": not problems, "redis": redis_up, "broker": broker_up, "problems": problems}


class RepeatFilter(logging.Filter):
    """Lets the first of a run of identical log lines through, then one line per ``period_s``
    saying how many were held back: an outage is a few lines a minute, never megabytes.

    It sits on every root handler, so a record is judged once and the verdict kept on it; and it
    never raises: a filter's exception escapes into the caller that logged (aiokafka's coordinator
    routine died of one), so a record it cannot read is let through as it is."""

    VERDICT = "_segstream_repeat_verdict"

    def __init__(self, period_s: float = 30.0, clock=time.monotonic):
        super().__init__()
        self.period_s = period_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str], list[float | int]] = {}  # -> [first shown, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        verdict = getattr(record, self.VERDICT, None)
        if verdict is None:
            try:
                verdict = self._judge(record)
            except Exception:  # noqa: BLE001 - see the class docstring
                verdict = True
            setattr(record, self.VERDICT, verdict)
        return verdict

    def _judge(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = self.clock()
        seen = self._seen.get(key)
        if seen is None or now - seen[0] >= self.period_s:
            if seen is not None and seen[1]:
                # args () not None: mode's formatter wraps None into (None,), which % then refuses
                record.msg, record.args = f"{key[2]} [{seen[1]} more like this in the last {now - seen[0]:.0f} s]", ()
            if len(self._seen) > 1000:
                self._seen.clear()
            self._seen[key] = [now, 0]
            return True
        seen[1] += 1
        metrics.LOG_SUPPRESSED.inc()
        return False


async def broker_up(consumer) -> bool:
    """A metadata request answered within 3 s: what /healthz says of the broker."""
    if consumer is None:
        return False
    try:
        await asyncio.wait_for(consumer.topics(), 3.0)
        return True
    except Exception:  # noqa: BLE001 - unhealthy is an answer, not a crash
        return False
