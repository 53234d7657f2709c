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
from segstream.core.personality import log_ratio_traits

from .artefact import ModelArtefact
from .features import compact, transform
from .personality_lstm import PersonalityLSTM


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


@dataclass
class Dataset:
    """Sequences of window spend (fraction of income) and their evinced-personality targets."""

    x: np.ndarray  # [N, T, K] left-aligned active windows
    mask: np.ndarray  # [N, T]
    y: np.ndarray  # [N, 5] standardised evinced personality
    y_mean: np.ndarray  # [5] of the raw scores: the scale the change statistic reads windows on
    y_std: np.ndarray

    @classmethod
    def from_spend(cls, spend_fraction: np.ndarray, active: np.ndarray) -> "Dataset":
        x, mask = compact(spend_fraction, active)
        raw = log_ratio_traits(spend_fraction.sum(1))
        mean, std = raw.mean(0), raw.std(0)
        return cls(x, mask, ((raw - mean) / std).astype(np.float32), mean, std)


def hidden_states(model: PersonalityLSTM, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        pred, hidden = model(torch.from_numpy(x), torch.from_numpy(mask))
    return pred.numpy(), hidden.numpy()


def fit(model: torch.nn.Module, loss_on, n: int, cfg: TrainConfig, log=print) -> dict:
    """Adam with early stopping on a held-out share of ``n`` rows; ``loss_on(rows)`` gives the loss."""
    g = torch.Generator().manual_seed(cfg.seed)
    perm = torch.randperm(n, generator=g).numpy()
    n_val = max(1, int(n * cfg.val_share))
    val, tr = perm[:n_val], perm[n_val:]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    best, best_state, bad, epochs = float("inf"), None, 0, 0
    for epoch in range(cfg.epochs):
        model.train()
        order = tr[torch.randperm(len(tr), generator=g).numpy()]
        for i in range(0, len(order), cfg.batch_size):
            opt.zero_grad()
            loss = loss_on(order[i : i + cfg.batch_size])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            v = float(loss_on(val))
        epochs = epoch + 1
        log(f"epoch {epochs:3d}  val_loss {v:.4f}")
        if v < best - 1e-4:
            best, bad = v, 0
            best_state = {k: t.clone() for k, t in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return {"val_mse": best, "epochs": epochs}


def sequence_loss(model: torch.nn.Module, x: np.ndarray, mask: np.ndarray, target: np.ndarray):
    """MSE of a sequence model's per-step output against ``target`` [N, T, D], on real steps only."""
    X, M, Y = torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(target)

    def loss_on(idx: np.ndarray) -> torch.Tensor:
        pred, _ = model(X[idx], M[idx])
        return ((pred - Y[idx]) ** 2)[M[idx]].mean()

    return loss_on


def calibrate(model: PersonalityLSTM, ds: Dataset, hidden: np.ndarray, spend_fraction: np.ndarray, active: np.ndarray,
              first_month: int, warmup: int) -> Calibration:
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


def train(spend_fraction: np.ndarray, active: np.ndarray, cfg: TrainConfig = TrainConfig(), source: dict | None = None,
          log=print, first_month: int = 0) -> ModelArtefact:
    """Train on [N, T, K] window spend whose first column is calendar month ``first_month`` (0 = January)."""
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    ds = Dataset.from_spend(spend_fraction, active)
    feats = transform(ds.x)
    x_mean = feats[ds.mask].mean(0)
    x_std = feats[ds.mask].std(0) + 1e-6
    x_norm = ((feats - x_mean) / x_std * ds.mask[..., None]).astype(np.float32)

    model = PersonalityLSTM(ds.x.shape[2], cfg.hidden_size)
    target = np.broadcast_to(ds.y[:, None, :], (*ds.mask.shape, ds.y.shape[1])).copy()
    fit_ = fit(model, sequence_loss(model, x_norm, ds.mask, target), len(ds.y), cfg, log=log)

    _, hidden = hidden_states(model, x_norm, ds.mask)
    steps = np.arange(ds.x.shape[1])[None, :]
    warm = ds.mask & (steps >= cfg.warmup_windows - 1)
    km = KMeans(cfg.n_segments, n_init=10, random_state=cfg.seed).fit(hidden[warm])
    log(f"trained in {time.perf_counter() - t0:.1f}s: val_mse {fit_['val_mse']:.4f}")
    return ModelArtefact(
        model=model,
        x_mean=x_mean,
        x_std=x_std,
        centroids=km.cluster_centers_.astype(np.float32),
        trained_on={**(source or {}), **asdict(cfg), **fit_},
        calibration=calibrate(model, ds, hidden, spend_fraction, active, first_month, cfg.warmup_windows),
    )
