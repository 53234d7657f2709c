"""Fit the change events' confidence: P(announced label is the true micro-segment).

The engine runs on the calibration banks (models/research/banks.py ``CALIBRATION``:
seeds and mixes that neither the six reported banks nor the emission settings were
tuned on), with every change announced (``min_confidence`` 0, so the fit sees the
whole range), and every event a consumer received is a sample: its features as the
engine saw them (carried in the event) and whether its label was right. A logistic
regression over core/confidence.py's features, then an isotonic map of its output,
so the probability is monotone in the logistic score and matches observed shares.

    segstream calibrate [--customers 3000]   # writes the confidence into the artefact
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from segstream.config import Settings
from segstream.core.confidence import FEATURES, ConfidenceModel, features
from segstream.core.events import SegmentChange


def event_features(changes: list[SegmentChange]) -> np.ndarray:
    """The features the engine computed for each announced event, read back from the event."""
    ev = [c.evidence or {} for c in changes]
    return features(
        np.array([c.margin if c.margin is not None else c.confidence for c in changes]),
        np.array([e.get("margin", 0.0) for e in ev]),
        np.array([e.get("windows_since_reset", 1) for e in ev]),
        np.array([e.get("reason") == "detected_change" for e in ev]),
        np.array([c.old_segment is None for c in changes]),
        np.array([e.get("purchases", 0) for e in ev]),
    )


def fit(x: np.ndarray, right: np.ndarray) -> ConfidenceModel:
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), np.where(x.std(0) > 0, x.std(0), 1.0)
    z = (x - mean) / scale
    lr = LogisticRegression(max_iter=2000, C=1.0).fit(z, right)
    score = lr.predict_proba(z)[:, 1]
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, right.astype(float))
    return ConfidenceModel(
        coef=lr.coef_[0].astype(np.float64),
        intercept=float(lr.intercept_[0]),
        iso_x=np.asarray(iso.X_thresholds_, np.float64),
        iso_y=np.asarray(iso.y_thresholds_, np.float64),
        mean=mean,
        scale=scale,
    )


def calibrate(settings: Settings, customers: int | None = None, log=print) -> tuple[ConfidenceModel, dict[str, Any]]:
    """Fit on the calibration banks; returns the model and what it was fitted on."""
    from segstream.models.research.banks import CALIBRATION, announcements, run

    settings = settings.model_copy(update={"min_confidence": 0.0})
    xs, ys = [], []
    for bank in CALIBRATION:
        r = run(bank, settings, customers)
        _, right, _ = announcements(r)
        xs.append(event_features(r.changes))
        ys.append(right)
        log(f"{bank.name}: {len(right)} events, {right.mean():.3f} right")
    x, y = np.vstack(xs), np.concatenate(ys)
    model = fit(x, y)
    return model, {
        "banks": [b.name for b in CALIBRATION],
        "seeds": [b.generator.seed for b in CALIBRATION],
        "events": int(len(y)),
        "features": list(FEATURES),
        "customers": customers or CALIBRATION[0].generator.customers,
    }


def with_confidence(artefact, model: ConfidenceModel, fitted_on: dict[str, Any]):
    """The artefact with ``model`` as its confidence (same network, same version)."""
    return replace(artefact, confidence=model, trained_on={**artefact.trained_on, "confidence": fitted_on})
