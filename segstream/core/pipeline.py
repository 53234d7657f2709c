"""Validated transactions in, segment changes out: the unit every entry point drives.

The embedded demo feeds it from a generator; the Faust worker feeds it from
Kafka. Keeping the glue here is what makes the demo and the service give the
same segmentation for the same events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .engine import STAGES, EngineResult, SegmentEngine
from .events import Transaction
from .personality import CATEGORY_INDEX
from .windows import ClosedWindow, Outcome, WindowAggregator


@dataclass
class PipelineTotals:
    """Running counts only: a worker runs for months, so nothing here may grow with the stream."""

    windows_closed: int = 0
    applied: int = 0
    stale: int = 0
    assigned: int = 0
    changes: int = 0
    first_assignments: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, windows_closed: int, r: EngineResult) -> None:
        self.windows_closed += windows_closed
        self.applied += r.applied
        self.stale += r.stale
        self.assigned += r.assigned
        self.changes += len(r.changes)
        self.first_assignments += sum(1 for c in r.changes if c.old_segment is None)
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


def add_transaction(windows: WindowAggregator, tx: Transaction) -> Outcome:
    """A validated transaction into its customer's open window (amounts in EUR)."""
    return windows.add(tx.customer_id, tx.epoch, CATEGORY_INDEX[tx.category], tx.amount_eur, tx.income_eur, tx.event_id)


class SegmentationPipeline:
    def __init__(self, engine: SegmentEngine, windows: WindowAggregator, batch_size: int = 1024):
        self.engine = engine
        self.windows = windows
        self.batch_size = batch_size
        self.totals = PipelineTotals()

    def ingest(self, tx: Transaction) -> Outcome:
        return add_transaction(self.windows, tx)

    def drain(self, final: bool = False) -> EngineResult:
        """Run the engine over every window the watermark closed (all of them if ``final``)."""
        closed = self.windows.flush() if final else self.windows.poll()
        return self.process(closed)

    def process(self, closed: list[ClosedWindow]) -> EngineResult:
        out = EngineResult()
        for i in range(0, len(closed), self.batch_size):
            out.merge(self.engine.process(closed[i : i + self.batch_size]))
        self.totals.add(len(closed), out)
        return out
