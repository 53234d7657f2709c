"""What the lookup API answers: the shapes its OpenAPI document publishes to consumers."""

from __future__ import annotations

from pydantic import BaseModel


class Segment(BaseModel):
    segment: int
    label: str
    size: int
    description: str
    recommendation: str
    why: str
    traits: dict[str, float]
    centroid: list[float]
    position: list[float]  # on the explorer's 2-D map
    # who is in it, in spending terms: a shallow tree over the last six windows' category shares
    # (rules_accuracy: its held-out accuracy over all segments, from training)
    rules: list[str] = []
    rules_accuracy: float | None = None


class TrajectoryPoint(BaseModel):
    window_start: str
    segment: int
    position: list[float]
    hidden: list[float]
    traits: dict[str, float]  # predicted Big-Five after this window (the model's scale: 0 = average)
    # set where the segment differs from the point before: why, from the trait shift
    change: str | None = None


class Flow(BaseModel):
    before: int  # -1: no segment yet (the customer's first)
    after: int
    customers: int


class WindowSummary(BaseModel):
    """One window: customers by segment among those whose window was applied, and how they moved."""

    window_start: str
    sizes: dict[int, int]
    flows: list[Flow]


class Customer(BaseModel):
    customer_id: str
    model_version: str  # the hidden space these segments live in (blue/green: docs/operations.md)
    segment: int  # -1 while warming up
    segment_label: str | None
    # the probability that segment_label is the customer's true micro-segment (calibrated on
    # generated banks, docs/tracking.md); None while warming up or with a model that has none
    confidence: float | None = None
    recommendation: str | None
    traits: dict[str, float]
    windows_applied: int
    last_window_start: str
    trajectory: list[TrajectoryPoint]
    segment_history: list[dict]


class MapPoint(BaseModel):
    customer_id: str
    segment: int
    x: float
    y: float
