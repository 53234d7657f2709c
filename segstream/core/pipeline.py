"""Validated transactions in, segment changes out: the unit every entry point drives.

The embedded demo feeds it from a generator; the Faust worker feeds it from
Kafka. Keeping the glue here is what makes the demo and the service give the
same segmentation for the same events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from segstream.errors import EngineFailing, RecordError

from .columns import TransactionColumns
from .engine import STAGES, EngineResult, SegmentEngine
from .events import EventRejected, Transaction
from .windows import LATE, OUTCOMES, ClosedWindow, Outcome, WindowAggregator, outcome_counts
from .wire import Limits, decode_batch


@dataclass
class PipelineTotals:
    """Running counts only: a worker runs for months, so nothing here may grow with the stream."""

    windows_closed: int = 0
    applied: int = 0
    stale: int = 0
    assigned: int = 0
    changes: int = 0
    first_assignments: int = 0
    detected: int = 0  # changes the change statistic detected
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, windows_closed: int, r: EngineResult) -> None:
        self.windows_closed += windows_closed
        self.applied += r.applied
        self.stale += r.stale
        self.assigned += r.assigned
        self.changes += len(r.changes)
        self.first_assignments += sum(1 for c in r.changes if c.old_segment is None)
        self.detected += r.detected
        for k, v in r.seconds.items():
            self.seconds[k] += v

    @property
    def flips(self) -> int:
        return self.changes - self.first_assignments

    @property
    def flip_rate(self) -> float:
        """Share of assigned windows, after a customer's first assignment, that changed segment."""
        base = self.assigned - self.first_assignments
        return self.flips / base if base else 0.0


@dataclass
class Ingested:
    """What became of a batch of payloads: an outcome per valid event, a reason per refused one."""

    valid: TransactionColumns
    outcome: np.ndarray  # per valid event, a code of windows.OUTCOMES
    rejected: list[tuple[int, EventRejected]]  # (position in the batch, why)
    withheld: int = 0  # valid events of erased customers, not counted (no new consent)
    other: int = 0  # valid events of no personality category (cash, taxes, ...): kept out of the spending mix

    def counts(self) -> Counter:
        c = Counter(outcome_counts(self.outcome))
        c["invalid"] = len(self.rejected)
        c["forgotten"] = self.withheld
        c["other_category"] = self.other
        return +c

    def late_positions(self) -> list[int]:
        """Events whose window had closed: kept for reprocessing, not lost."""
        return self.valid.position[self.outcome == LATE].tolist()


def ingest_payloads(
    windows: WindowAggregator,
    payloads: Sequence[bytes | None],
    limits: Limits,
    keys: Sequence[bytes | None] | None = None,
    withhold: Callable[[list[str]], np.ndarray] | None = None,
) -> Ingested:
    """Raw events, as producers publish them (with their Kafka keys, if any), into their customers' open windows.

    ``withhold`` marks the events (by customer id) that must not be counted: customers
    who were erased, whose old events a replay brings back.
    """
    decoded = decode_batch(payloads, limits, keys)
    valid, withheld = decoded.valid, 0
    if withhold is not None and len(valid):
        drop = withhold(valid.customer_id)
        if drop.any():
            valid, withheld = valid.take(np.flatnonzero(~drop)), int(drop.sum())
    return Ingested(valid, windows.add_columns(valid), decoded.rejected, withheld, decoded.other)


class SegmentationPipeline:
    def __init__(
        self,
        engine: SegmentEngine,
        windows: WindowAggregator,
        batch_size: int = 1024,
        isolate_except: tuple[type[BaseException], ...] | None = None,
    ):
        self.engine = engine
        self.windows = windows
        self.batch_size = batch_size
        self.totals = PipelineTotals()
        # None: an engine error propagates (the demo, tests). A tuple: errors that are nobody's
        # window's fault (the store is down) propagate; any other sets the failing windows aside
        # (``EngineResult.quarantined``), found by bisection, so one customer's data that trips a
        # bug cannot stop a partition for good, as long as the engine works for others
        # (``_isolating``).
        self.isolate_except = isolate_except
        self._known: list[str] = []  # a customer whose windows the engine last applied (for its probe)

    def ingest(self, tx: Transaction) -> Outcome:
        """One validated transaction (tests and small tools; streams use ingest_payloads)."""
        return OUTCOMES[int(self.windows.add_columns(TransactionColumns.build([tx]))[0])]

    def ingest_payloads(self, payloads: Sequence[bytes], limits: Limits) -> Ingested:
        return ingest_payloads(self.windows, payloads, limits)

    def drain(self, final: bool = False) -> EngineResult:
        """Run the engine over every window the watermark closed (all of them if ``final``)."""
        closed = self.windows.flush() if final else self.windows.poll()
        return self.process(closed)

    def process(self, closed: list[ClosedWindow]) -> EngineResult:
        out = EngineResult()
        for i in range(0, len(closed), self.batch_size):
            chunk = closed[i : i + self.batch_size]
            out.merge(self.engine.process(chunk) if self.isolate_except is None else self._isolating(chunk))
        self.totals.add(len(closed), out)
        return out

    def _isolating(self, windows: list[ClosedWindow]) -> EngineResult:
        """The engine over ``windows``; on a failure, the windows at fault set aside, if the failure
        is theirs.

        A window is set aside only with evidence that the engine works: its error names the record's
        fault (a :class:`RecordError`), or other customers' windows of the batch applied, or a plain
        window goes through, of a customer never seen and of the last one whose windows applied
        (``SegmentEngine.probe``, its stored state read). Without it, nothing is set aside and
        :class:`EngineFailing` stops the batch: a broken artefact, a bug every window trips or a
        core out of memory would otherwise send the whole stream to the DLQ and commit past it."""
        try:
            return self._with_evidence(windows)
        except MemoryError as err:  # wherever it struck: the bisection and the probe re-raise it
            raise EngineFailing(f"the core ran out of memory ({err!r})") from err

    def _with_evidence(self, windows: list[ClosedWindow]) -> EngineResult:
        try:
            out = self.engine.process(windows)
            self._known = [windows[0].customer_id] if windows else self._known
            return out
        except (*self.isolate_except, MemoryError):
            raise
        except Exception as err:  # noqa: BLE001 - narrowed below, never swallowed
            first = err
        out = self._split(windows, first)
        suspects = [e for _, e in out.quarantined if not isinstance(e, RecordError)]
        if not suspects:
            return out
        customers = len({w.customer_id for w in windows})
        if customers > 1 and len(out.quarantined) == len(windows):
            raise EngineFailing(f"every window of {customers} customers failed in the engine: {first!r}") from first
        try:
            self.engine.probe(windows[0], self._known)
        except (*self.isolate_except, MemoryError):
            raise
        except Exception as err:  # noqa: BLE001 - the engine fails apart from any record
            raise EngineFailing(f"the engine fails on a plain window too: {err!r} (first: {first!r})") from err
        return out

    def _bisect(self, windows: list[ClosedWindow]) -> EngineResult:
        try:
            return self.engine.process(windows)
        except (*self.isolate_except, MemoryError):
            raise
        except Exception as err:  # noqa: BLE001 - narrowed below, never swallowed: quarantined windows are reported
            return self._split(windows, err)

    def _split(self, windows: list[ClosedWindow], err: Exception) -> EngineResult:
        """``windows`` failed with ``err``: each half of the customers again, down to one customer,
        whose windows then go one at a time in order (a customer's windows are never split across
        halves, so none is applied after a later one); the windows that still fail are ``quarantined``."""
        customers = list(dict.fromkeys(w.customer_id for w in windows))
        if len(customers) > 1:
            half = set(customers[: len(customers) // 2])
            out = self._bisect([w for w in windows if w.customer_id in half])
            out.merge(self._bisect([w for w in windows if w.customer_id not in half]))
            return out
        if len(windows) == 1:
            return EngineResult(quarantined=[(windows[0], err)])
        out = EngineResult()
        for w in sorted(windows, key=lambda w: w.index):
            out.merge(self._bisect([w]))
        return out
