"""Training the recurrent predictor on windowed spending, and seeding its centroids.

The target is the paper's idea, the *spending-evinced* personality over a
customer's whole history, read from their total spending mix through the loading
table by log-ratios (``log_ratio_traits``: the share-weighted sum the paper uses
ranks a customer's second trait wrong a third of the time on our generator, and a
model cannot learn better than its target). A bank can compute it from its own
data. The generator's latent personality is never shown to training; it is kept
for scoring.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans

from segstream.core.change import Calibration
from segstream.core.personality import CATEGORIES, log_ratio_traits

from ..artefact import ModelArtefact
from ..features import compact, input_scale, standardise, transform
from ..personality_lstm import PersonalityLSTM
from .surrogate import micro_segment_rules


@dataclass(frozen=True)
class TrainConfig:
    hidden_size: int = 12
    n_segments: int = 20
    warmup_windows: int = 3
    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-2
    patience: int = 6
    val_share: float = 0.2
    seed: int = 0
    # "customers": hold out a random share of customers (generated data: every customer has
    # the same months). "chronological": train on the first months, stop early on how well the
    # state predicts the later months (a bank's history: the future is what matters).
    split: str = "customers"


@dataclass
class Dataset:
    """Sequences of window spend (fraction of income) and their evinced-personality targets."""

    x: np.ndarray  # [N, T, K] left-aligned active windows
    mask: np.ndarray  # [N, T]
    y: np.ndarray  # [N, 5] standardised evinced personality
    y_mean: np.ndarray  # [5] of the raw scores: the scale the change statistic reads windows on
    y_std: np.ndarray

    @classmethod
    def from_spend(cls, spend_fraction: np.ndarray, active: np.ndarray) -> Dataset:
        x, mask = compact(spend_fraction, active)
        raw = log_ratio_traits(spend_fraction.sum(1))
        mean, std = raw.mean(0), raw.std(0)
        return cls(x, mask, ((raw - mean) / std).astype(np.float32), mean, std)


def hidden_states(model: PersonalityLSTM, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        pred, hidden = model(torch.from_numpy(x), torch.from_numpy(mask))
    return pred.numpy(), hidden.numpy()


def fit(
    model: torch.nn.Module, loss_on, n: int, cfg: TrainConfig, log=print, val_on=None, rows: np.ndarray | None = None
) -> dict:
    """Adam with early stopping; ``loss_on(rows)`` gives the training loss of those rows.

    Without ``val_on`` a random share of the ``n`` rows is held out; with it (a chronological
    split) ``rows`` train and ``val_on()`` is the held-out loss."""
    g = torch.Generator().manual_seed(cfg.seed)
    if val_on is None:
        perm = torch.randperm(n, generator=g).numpy()
        n_val = max(1, int(n * cfg.val_share))
        val, tr = perm[:n_val], perm[n_val:]
        val_on = lambda: loss_on(val)  # noqa: E731
    else:
        tr = np.arange(n) if rows is None else rows
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    best, best_state, bad, epochs, curve = float("inf"), None, 0, 0, []
    for epoch in range(cfg.epochs):
        model.train()
        order = tr[torch.randperm(len(tr), generator=g).numpy()]
        seen = []
        for i in range(0, len(order), cfg.batch_size):
            opt.zero_grad()
            loss = loss_on(order[i : i + cfg.batch_size])
            loss.backward()
            opt.step()
            seen.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            v = float(val_on())
        epochs = epoch + 1
        curve.append((float(np.mean(seen)), v))
        log(f"epoch {epochs:3d}  train_loss {curve[-1][0]:.4f}  val_loss {v:.4f}")
        if v < best - 1e-4:
            best, bad = v, 0
            best_state = {k: t.clone() for k, t in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return {"val_mse": best, "epochs": epochs, "curve": curve}


def sequence_loss(
    model: torch.nn.Module, x: np.ndarray, mask: np.ndarray, target: np.ndarray, scored: np.ndarray | None = None
):
    """MSE of a sequence model's per-step output against ``target`` [N, T, D], on real steps
    only (of those, the ``scored`` ones: the model still reads the others)."""
    X, M, Y = torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(target)
    S = M if scored is None else torch.from_numpy(scored & mask)

    def loss_on(idx: np.ndarray) -> torch.Tensor:
        pred, _ = model(X[idx], M[idx])
        return ((pred - Y[idx]) ** 2)[S[idx]].mean()

    return loss_on


def choose_segments(
    hidden: np.ndarray, candidates: tuple[int, ...] = tuple(range(4, 33, 2)), seed: int = 0, sample: int = 5000
) -> tuple[int, list[dict]]:
    """The number of segments with the best silhouette of k-means on the hidden states,
    and the elbow/silhouette table behind the choice (for the training report)."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    pts = hidden[rng.choice(len(hidden), min(len(hidden), 4 * sample), replace=False)]
    table = []
    for k in candidates:
        if k >= len(pts):
            break
        km = KMeans(k, n_init=3, random_state=seed).fit(pts)
        sil = float(silhouette_score(pts, km.labels_, sample_size=min(sample, len(pts)), random_state=seed))
        table.append({"k": k, "inertia": float(km.inertia_), "silhouette": sil})
    best = max(table, key=lambda r: (round(r["silhouette"], 3), -r["k"]))
    return best["k"], table


def calibrate(
    model: PersonalityLSTM,
    ds: Dataset,
    hidden: np.ndarray,
    spend_fraction: np.ndarray,
    active: np.ndarray,
    first_month: int,
    warmup: int,
) -> Calibration:
    """Scales of the change statistic, measured on the training history itself.

    Each window's evinced personality is compared with the prediction of the state
    before it, exactly as the engine does; the seasonal table is the mean shift of
    windows by calendar month. A bank's own history gives its own seasons.
    """
    raw = log_ratio_traits(spend_fraction)  # [N, T, 5] per window, calendar-aligned
    z = (raw - ds.y_mean) / ds.y_std
    moy = (first_month + np.arange(z.shape[1])) % 12
    season = np.zeros((12, 5))
    overall = z[active].mean(0)
    for m in range(12):
        sel = active[:, moy == m]
        if sel.any():
            season[m] = z[:, moy == m][sel].mean(0) - overall
    observed, _ = compact(z - season[moy][None], active)
    with torch.inference_mode():  # prediction before step t, for t >= 1
        before = model.head(torch.from_numpy(np.ascontiguousarray(hidden[:, :-1]))).numpy()
    steps = np.arange(1, ds.mask.shape[1])[None, :]
    settled = ds.mask[:, 1:] & (steps >= warmup)
    residual = (observed[:, 1:] - before)[settled]
    return Calibration(ds.y_mean, ds.y_std, residual.std(0) + 1e-6, season)


def _fit_chronological(
    model: PersonalityLSTM,
    ds: Dataset,
    x_norm: np.ndarray,
    spend_fraction: np.ndarray,
    active: np.ndarray,
    cfg: TrainConfig,
    log,
) -> dict:
    """Train on the months before the cut, each customer's target read from those months
    only; validate on the windows after it against their whole history."""
    months = spend_fraction.shape[1]
    cut = max(1, min(months - 1, int(round(months * (1 - cfg.val_share)))))
    month_of, _ = compact(
        np.broadcast_to(np.arange(months, dtype=np.float64)[None, :, None], (len(active), months, 1)).copy(), active
    )
    before = ds.mask & (month_of[..., 0] < cut)
    after = ds.mask & ~before
    early = log_ratio_traits(spend_fraction[:, :cut].sum(1))
    y_early = ((early - ds.y_mean) / ds.y_std).astype(np.float32)
    shape = (*ds.mask.shape, ds.y.shape[1])
    train_loss = sequence_loss(model, x_norm, ds.mask, np.broadcast_to(y_early[:, None, :], shape).copy(), before)
    val_loss = sequence_loss(model, x_norm, ds.mask, np.broadcast_to(ds.y[:, None, :], shape).copy(), after)
    rows, held = np.flatnonzero(before.any(1)), np.flatnonzero(after.any(1))
    if not len(held):
        raise ValueError("no customer has a window after the chronological cut: a longer history is needed")
    log(
        f"chronological split: months 0-{cut - 1} train ({len(rows)} customers), {cut}-{months - 1} validate "
        f"({len(held)})"
    )
    out = fit(model, train_loss, len(ds.y), cfg, log=log, val_on=lambda: val_loss(held), rows=rows)
    return {**out, "cut_month": cut}


def rules_of(hidden: np.ndarray, ds: Dataset, centroids: np.ndarray, cfg: TrainConfig) -> dict:
    """Each segment's readable rules over category shares, shipped in the artefact for the API."""
    r = micro_segment_rules(
        hidden, ds.mask, ds.x, centroids, list(CATEGORIES), warmup=cfg.warmup_windows, seed=cfg.seed
    )
    return {"segment_rules": {str(k): v for k, v in r.rules.items()}, "segment_rules_accuracy": r.accuracy}


def train(
    spend_fraction: np.ndarray,
    active: np.ndarray,
    cfg: TrainConfig = TrainConfig(),
    source: dict | None = None,
    log=print,
    first_month: int = 0,
) -> ModelArtefact:
    """Train on [N, T, K] window spend whose first column is calendar month ``first_month`` (0 = January)."""
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    ds = Dataset.from_spend(spend_fraction, active)
    feats = transform(ds.x)
    x_mean, x_std = input_scale(feats, ds.mask)
    x_norm = standardise(feats, x_mean, x_std, ds.mask)

    model = PersonalityLSTM(ds.x.shape[2], cfg.hidden_size)
    target = np.broadcast_to(ds.y[:, None, :], (*ds.mask.shape, ds.y.shape[1])).copy()
    if cfg.split == "chronological":
        fit_ = _fit_chronological(model, ds, x_norm, spend_fraction, active, cfg, log)
    else:
        fit_ = fit(model, sequence_loss(model, x_norm, ds.mask, target), len(ds.y), cfg, log=log)

    _, hidden = hidden_states(model, x_norm, ds.mask)
    steps = np.arange(ds.x.shape[1])[None, :]
    warm = ds.mask & (steps >= cfg.warmup_windows - 1)
    n_segments, fit_["segment_choice"] = cfg.n_segments, []
    if n_segments <= 0:
        n_segments, fit_["segment_choice"] = choose_segments(hidden[warm], seed=cfg.seed)
        log(f"segments: {n_segments} (best silhouette)")
    km = KMeans(n_segments, n_init=10, random_state=cfg.seed).fit(hidden[warm])
    fit_["n_segments"] = n_segments
    fit_.update(rules_of(hidden, ds, km.cluster_centers_, cfg))
    log(f"trained in {time.perf_counter() - t0:.1f}s: val_mse {fit_['val_mse']:.4f}")
    return ModelArtefact(
        model=model,
        x_mean=x_mean,
        x_std=x_std,
        centroids=km.cluster_centers_.astype(np.float32),
        trained_on={**(source or {}), **asdict(cfg), **fit_},  # the curve and the k table: the report's
        calibration=calibrate(model, ds, hidden, spend_fraction, active, first_month, cfg.warmup_windows),
    )
