"""The two things the engine needs from the outside world, as protocols.

A *model* advances customers' LSTM states by one window; a *state store* keeps
those states and the shared k-means statistics. Both work on whole batches so
that adapters can make one torch call and one Redis round trip per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .change import Calibration
from .confidence import ConfidenceModel
from .kmeans import CentroidStats


@dataclass
class StateBatch:
    """Per-customer state for a batch, row-aligned with a list of customer ids."""

    h: np.ndarray  # [B, H] float32 LSTM hidden state
    c: np.ndarray  # [B, H] float32 LSTM cell state
    segment: np.ndarray  # [B] int32, -1 = not yet assigned (warm-up)
    prev_segment: np.ndarray  # [B] int32 segment before the last window, to re-announce a change on replay
    last_window: np.ndarray  # [B] int64 index of the last window applied, -1 = none
    n_windows: np.ndarray  # [B] int32 windows since the state (re)started: a detected change restarts it
    nearest: np.ndarray  # [B] int32 nearest centroid after the last window, -1 = none (the k-means fold label)
    streak: np.ndarray  # [B] uint8 windows in a row ``nearest`` beat the announced segment
    pending: np.ndarray  # [B] bool: a change was detected and its new segment not yet announced
    chart: np.ndarray  # [B, 5] float32 the change chart's memory of standardised residuals (core/change.py)
    # [B, H] float32 LSTM state over the windows since the change statistic last looked
    # quiet: what a detected change restarts from, so the new state has seen the change begin
    shadow_h: np.ndarray
    shadow_c: np.ndarray

    @classmethod
    def empty(cls, n: int, hidden_size: int) -> StateBatch:
        return cls(
            h=np.zeros((n, hidden_size), np.float32),
            c=np.zeros((n, hidden_size), np.float32),
            segment=np.full(n, -1, np.int32),
            prev_segment=np.full(n, -1, np.int32),
            last_window=np.full(n, -1, np.int64),
            n_windows=np.zeros(n, np.int32),
            nearest=np.full(n, -1, np.int32),
            streak=np.zeros(n, np.uint8),
            pending=np.zeros(n, bool),
            chart=np.zeros((n, 5), np.float32),
            shadow_h=np.zeros((n, hidden_size), np.float32),
            shadow_c=np.zeros((n, hidden_size), np.float32),
        )

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(cls.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.segment)

    def take(self, rows: np.ndarray) -> StateBatch:
        return StateBatch(*(getattr(self, f)[rows] for f in self.fields()))

    def stored(self) -> StateBatch:
        """This batch at the precision the stores keep: the LSTM state and the change statistic
        as float16. Halves the Redis record (120 bytes at hidden size 12, not 168); every store
        rounds alike, so the demo, the in-memory store and Redis compute the same segments."""
        out = StateBatch(*(getattr(self, f) for f in self.fields()))
        for f in ("h", "c", "shadow_h", "shadow_c", "chart"):
            setattr(out, f, getattr(self, f).astype(np.float16).astype(np.float32))
        return out


def flow_counts(states: StateBatch) -> np.ndarray:
    """[n, 4] rows (window, segment before, segment after, customers) of a batch's states that
    have a segment: what each window did to segment sizes, kept per window by the stores."""
    have = states.segment >= 0
    triples = np.stack([states.last_window[have], states.prev_segment[have], states.segment[have]], 1)
    if not len(triples):
        return np.zeros((0, 4), np.int64)
    uniq, counts = np.unique(triples.astype(np.int64), axis=0, return_counts=True)
    return np.column_stack([uniq, counts])


def flows_from_fields(items) -> dict[int, dict[tuple[int, int], int]]:
    """``window:before:after`` -> customers, as the stores keep them, into {window: {(before, after): n}}.
    A key seen twice (a cluster's slot groups each count their own customers) is added up."""
    out: dict[int, dict[tuple[int, int], int]] = {}
    for key, n in items:
        w, before, after = map(int, key.split(":"))
        if n:
            cell = out.setdefault(w, {})
            cell[(before, after)] = cell.get((before, after), 0) + n
    return out


class SequenceModel(Protocol):
    version: str
    hidden_size: int

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance [B, K] normalised window spend one step from (h, c); returns (h, c, traits[B, 5])."""
        ...

    def traits_of(self, h: np.ndarray) -> np.ndarray:
        """Big-Five profile read off hidden states [N, H] -> [N, 5]."""
        ...

    @property
    def calibration(self) -> Calibration | None:
        """The change statistic's scales, from training; None: no change detection."""
        ...

    @property
    def confidence(self) -> ConfidenceModel | None:
        """The announced label's probability of being right, fitted; None: the margin stands in."""
        ...


class StateStore(Protocol):
    def load(self, customer_ids: Sequence[str]) -> tuple[StateBatch, CentroidStats]:
        """Customers' states (empty where unknown) and the current k-means statistics, in one read."""
        ...

    def commit(self, customer_ids: Sequence[str], states: StateBatch) -> np.ndarray:
        """Write states whose ``last_window`` is newer than the stored one; fold each written
        customer with ``nearest >= 0`` into that centroid's statistics; return the written mask.

        The newer-window guard is what makes a replay after a crash harmless.
        """
        ...

    def init_centroids(self, centroids: np.ndarray, prior_weight: float) -> None:
        """Seed the k-means statistics unless they exist already (first worker wins)."""
        ...
