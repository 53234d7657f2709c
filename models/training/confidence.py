"""Fit the change events' confidence: P(announced label is the true micro-segment).

The engine runs on the calibration banks (models/research/banks.py ``CALIBRATION``:
seeds and mixes that are none of the six reported banks), with every change and first
segment announced as soon as the policy allows (``min_confidence`` and
``first_confidence`` 0, so the fit sees the whole range), and every event a consumer
received is a sample: its features as the engine saw them (carried in the event) and
whether its label was right. A logistic
regression over core/confidence.py's features, then an isotonic map of its output,
so the probability is monotone in the logistic score and matches observed shares.

    segstream calibrate [--customers 3000] [--out x.pt]   # the volume terms and both confidences
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from segstream.config import Settings
from segstream.core.confidence import FEATURES, STATE_FEATURES, ConfidenceModel, features
from segstream.core.events import SegmentChange
from segstream.core.personality import TRAITS, dominant_traits, segment_label


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
        np.array([[c.traits[t] for t in TRAITS] for c in changes]).reshape(len(changes), len(TRAITS)),
        np.array([c.distance for c in changes]),
        np.array([e.get("statistic", 0.0) for e in ev]),
        np.array([c.segment_label == segment_label(dominant_traits([c.traits[t] for t in TRAITS])) for c in changes]),
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


def fit_volume(artefact, customers: int = 1500, seed: int = 300) -> tuple[float, float]:
    """(volume_exponent, reference_events) of the change statistic's residual spread.

    Steps the artefact's network through generated banks without changes at 5 to 40 purchases a
    month and fits log E[z^2] = -exponent * log(purchases / reference) over settled windows (z:
    the residual in units of the training spread); a window read from few purchases is the
    noisier one, and a detector that knows it alarms less on sparse customers and sooner on
    dense ones."""
    from segstream.models.artefact import TorchSequenceModel
    from segstream.producers.synthetic import GeneratorConfig, SyntheticBank

    model, cal = TorchSequenceModel(artefact), artefact.calibration
    n_all, z_all = [], []
    for tx in (5.0, 10.0, 20.0, 40.0):
        bank = SyntheticBank(GeneratorConfig(customers=customers, months=18, seed=seed + int(tx), tx_per_month=tx))
        spend, active = bank.monthly_spend()
        counts = np.zeros(spend.shape[:2])
        for mb in bank.months():
            np.add.at(counts[:, mb.month], mb.customer, 1)
        n = len(spend)
        h = np.zeros((n, artefact.hidden_size), np.float32)
        c, seen = np.zeros_like(h), np.zeros(n, int)
        for t in range(spend.shape[1]):
            a = active[:, t]
            moy = np.full(n, (bank.config.start_month - 1 + t) % 12)
            z = (cal.observe(spend[:, t], moy) - model.traits_of(h)) / cal.residual_sd
            settled = a & (seen >= 6)
            n_all.append(counts[settled, t])
            z_all.append((z[settled] ** 2).mean(1))
            h[a], c[a], _ = model.step(spend[a, t].astype(np.float32), h[a], c[a])
            seen += a
    n_ev, z2 = np.concatenate(n_all), np.concatenate(z_all)
    levels = np.unique(n_ev)
    weight = np.array([(n_ev == v).sum() for v in levels])
    keep = weight >= 50
    mean = np.array([z2[n_ev == v].mean() for v in levels[keep]])
    slope, icpt = np.polyfit(np.log(levels[keep]), np.log(mean), 1, w=np.sqrt(weight[keep]))
    exponent = float(-slope)
    return exponent, float(np.exp(icpt / exponent)) if exponent > 0 else 20.0


def calibrate(artefact, settings: Settings, customers: int | None = None, log=print):
    """The artefact with its detector's volume terms and both confidences fitted: the change
    events' and the current segment's (from each customer's state at the end of each bank)."""
    import tempfile
    from pathlib import Path

    exponent, reference = fit_volume(artefact)
    log(f"residual spread: variance ~ (purchases / {reference:.1f}) ** -{exponent:.3f}")
    cal = replace(artefact.calibration, volume_exponent=exponent, reference_events=reference)
    artefact = replace(artefact, calibration=cal, confidence=None, current_confidence=None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "artefact.pt"
        artefact.save(path)
        events, current, fitted_on = _fit_confidences(settings.model_copy(update={"model_path": path}), customers, log)
    fitted_on.update(volume_exponent=exponent, reference_events=reference)
    # the confidence reads the change statistic: what it was fitted under, to check a deployment against
    fitted_on["detector"] = {
        k: getattr(settings, k)
        for k in (
            "change_chart",
            "change_threshold",
            "change_reference",
            "change_weight",
            "change_restart",
            "change_quiet",
        )
    }
    trained_on = {**artefact.trained_on, "confidence": fitted_on}
    return replace(artefact, confidence=events, current_confidence=current, trained_on=trained_on)


def _fit_confidences(settings: Settings, customers: int | None, log) -> tuple[ConfidenceModel, ConfidenceModel, dict]:
    from segstream.models.research.banks import CALIBRATION, announcements, current_labels, run

    # every event announced as soon as the policy allows, so the fit sees the whole range
    settings = settings.model_copy(update={"min_confidence": 0.0, "first_confidence": 0.0})
    xs, ys, cx, cy = [], [], [], []
    for bank in CALIBRATION:
        r = run(bank, settings, customers)
        _, right, _ = announcements(r)
        xs.append(event_features(r.changes))
        ys.append(right)
        x, y = current_labels(r)
        cx.append(x)
        cy.append(y)
        log(f"{bank.name}: {len(right)} events, {right.mean():.3f} right; {y.mean():.3f} of current labels right")
    x, y = np.vstack(xs), np.concatenate(ys)
    return (
        fit(x, y),
        fit(np.vstack(cx), np.concatenate(cy)),
        {
            "banks": [b.name for b in CALIBRATION],
            "seeds": [b.generator.seed for b in CALIBRATION],
            "events": int(len(y)),
            "states": int(sum(len(v) for v in cy)),
            "features": list(FEATURES),
            "state_features": list(STATE_FEATURES),
            "customers": customers or CALIBRATION[0].generator.customers,
        },
    )
