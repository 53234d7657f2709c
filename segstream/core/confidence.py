"""The probability that an announced segment is the customer's true micro-segment.

The distance margin to the runner-up centroid says how clearly a state sits in its
segment, not how often such a label is right: a customer who buys little has a noisy
state, so the same margin is right less often, and a label read two windows after a
detected change is right less often than one read from a year. A consumer needs the
probability (``min_confidence`` trades recall for precision on it), so the margin is
read together with what else the engine knows at that window: a logistic model over a
few features, then an isotonic map of its output (both fitted on generated banks the
shipped settings were not tuned on: models/training/confidence.py). Serving evaluates
them with numpy alone.

>>> import numpy as np
>>> m = ConfidenceModel(coef=np.array([4.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), intercept=-1.0,
...                     iso_x=np.array([0.0, 1.0]), iso_y=np.array([0.0, 1.0]))
>>> x = features(np.array([0.0, 0.5]), np.zeros(2), np.ones(2), np.zeros(2, bool),
...              np.zeros(2, bool), np.full(2, 20), np.zeros((2, 5)), np.ones(2), np.zeros(2))
>>> p = m.score(x)
>>> bool(p[1] > p[0]), bool((0 <= p).all() and (p <= 1).all())
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURES = (
    "margin",  # to the runner-up centroid, 0..1 (kmeans.nearest)
    "relative",  # how much nearer than the announced segment's centroid, -1..1
    "log_windows",  # log of windows since the state's fresh start (first window or a detected change)
    "after_detection",  # the move follows a detected change (0 for a first assignment)
    "first",  # a first assignment
    "log_events",  # log(1 + purchases in this window): a sparse window says little
    "margin_x_log_events",  # a clear margin from few purchases is worth less
    # a micro-segment is the order of the two leading traits: how far the state's predicted traits
    # are from swapping that order says more than the centroid geometry alone (issue 31: with
    # these four the worst bank's calibration error went from 0.056 to 0.043)
    "trait_gap_first",  # dominant minus second predicted trait
    "trait_gap_second",  # second minus third
    "distance",  # to the nearest centroid: a state far from every centroid is an unusual one
    "log_statistic",  # log(1 + the change statistic at this window): how loudly the spending moved
    "agrees",  # the state's own two leading traits name the nearest centroid's label
)


def features(
    margin: np.ndarray,
    relative: np.ndarray,
    n_windows: np.ndarray,
    after_detection: np.ndarray,
    first: np.ndarray,
    n_events: np.ndarray,
    traits: np.ndarray,
    distance: np.ndarray,
    statistic: np.ndarray,
    agrees: np.ndarray | None = None,
) -> np.ndarray:
    """[B, len(FEATURES)], row-aligned with the inputs; ``traits`` [B, 5] the state's predicted traits."""
    log_events = np.log1p(np.asarray(n_events, np.float64))
    margin = np.asarray(margin, np.float64)
    ranked = -np.sort(-np.asarray(traits, np.float64), axis=1)
    return np.column_stack(
        [
            margin,
            np.asarray(relative, np.float64),
            np.log(np.maximum(np.asarray(n_windows, np.float64), 1.0)),
            np.asarray(after_detection, np.float64) * (1 - np.asarray(first, np.float64)),
            np.asarray(first, np.float64),
            log_events,
            margin * log_events,
            ranked[:, 0] - ranked[:, 1],
            ranked[:, 1] - ranked[:, 2],
            np.asarray(distance, np.float64),
            np.log1p(np.maximum(np.asarray(statistic, np.float64), 0.0)),
            np.ones(len(margin)) if agrees is None else np.asarray(agrees, np.float64),
        ]
    )


STATE_FEATURES = (
    "margin",  # how much nearer the announced segment's centroid is than any other (-1..1)
    "log_windows",  # log of windows since the state's fresh start
    "pending",  # a detected change not announced yet: the announced label may be the old one
)


def announced_margin(centroids: np.ndarray, h: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """[B] (d_other - d_announced) / (d_other + d_announced), d_other the nearest other centroid:
    positive while the announced segment is the nearest, negative once another is nearer."""
    d = np.linalg.norm(np.asarray(h, np.float64)[:, None, :] - centroids[None, :, :], axis=2)
    rows = np.arange(len(d))
    seg = np.maximum(segment, 0)
    own = d[rows, seg]
    d[rows, seg] = np.inf
    other = d.min(1)
    return np.divide(other - own, other + own, out=np.zeros_like(own), where=(other + own) > 0)


def state_features(margin: np.ndarray, n_windows: np.ndarray, pending: np.ndarray) -> np.ndarray:
    """[B, len(STATE_FEATURES)] for a customer's current announced segment."""
    return np.column_stack(
        [
            np.asarray(margin, np.float64),
            np.log(np.maximum(np.asarray(n_windows, np.float64), 1.0)),
            np.asarray(pending, np.float64),
        ]
    )


@dataclass(frozen=True)
class ConfidenceModel:
    coef: np.ndarray  # [features] on standardised features
    intercept: float
    iso_x: np.ndarray  # the isotonic map: logistic output -> observed share right (increasing)
    iso_y: np.ndarray
    mean: np.ndarray | None = None  # feature standardisation (None: raw features)
    scale: np.ndarray | None = None

    def score(self, x: np.ndarray) -> np.ndarray:
        """[B] probabilities for a feature matrix: ``features`` of change events (the nearest
        centroid's label right), ``state_features`` of a current segment."""
        if self.mean is not None:
            x = (x - self.mean) / self.scale
        z = x @ self.coef + self.intercept
        return np.interp(1.0 / (1.0 + np.exp(-z)), self.iso_x, self.iso_y)
