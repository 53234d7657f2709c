"""Validated transactions in, segment changes out: the unit every entry point drives.

The embedded demo feeds it from a generator; the Faust worker feeds it from
Kafka. Keeping the glue here is what makes the demo and the service give the
same segmentation for the same events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .engine import EngineResult, SegmentEngine
from .events import Transaction
from .personality import CATEGORY_INDEX
from .windows import ClosedWindow, Outcome, WindowAggregator


@dataclass
class PipelineTotals:
    windows_closed: int = 0
    result: EngineResult = field(default_factory=EngineResult)

    @property
    def first_assignments(self) -> int:
        return sum(1 for c in self.result.changes if c.old_segment is None)

    @property
    def flips(self) -> int:
        return len(self.result.changes) - self.first_assignments

    @property
    def flip_rate(self) -> float:
        """Share of assigned windows, after a customer's first assignment, that changed segment."""
        base = self.result.assigned - self.first_assignments
        return self.flips / base if base else 0.0


class SegmentationPipeline:
    def __init__(self, engine: SegmentEngine, windows: WindowAggregator, batch_size: int = 1024):
        self.engine = engine
        self.windows = windows
        self.batch_size = batch_size
        self.totals = PipelineTotals()

    def ingest(self, tx: Transaction) -> Outcome:
        return self.windows.add(
            tx.customer_id, tx.epoch, CATEGORY_INDEX[tx.category], tx.amount_eur, tx.income_eur, tx.event_id
        )

    def drain(self, final: bool = False) -> EngineResult:
        """Run the engine over every window the watermark closed (all of them if ``final``)."""
        closed = self.windows.flush() if final else self.windows.poll()
        return self.process(closed)

    def process(self, closed: list[ClosedWindow]) -> EngineResult:
        out = EngineResult()
        for i in range(0, len(closed), self.batch_size):
            out.merge(self.engine.process(closed[i : i + self.batch_size]))
        self.totals.windows_closed += len(closed)
        self.totals.result.merge(out)
        return out
