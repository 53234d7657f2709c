"""Window spend -> model input. One place, so training and serving cannot disagree."""

from __future__ import annotations

import numpy as np

# Spend as a fraction of income is heavy-tailed (a car can be 3x a month's income);
# log1p of a scaled fraction keeps one-offs from swamping the rest of the mix.
_SCALE = 20.0


def transform(spend_fraction: np.ndarray) -> np.ndarray:
    return np.log1p(np.asarray(spend_fraction, np.float32) * _SCALE)


def input_scale(feats: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and spread over the active windows: fitted once in training, shipped in
    the artefact, applied by :func:`standardise` wherever the model is fed."""
    return feats[mask].mean(0), feats[mask].std(0) + 1e-6


def standardise(feats: np.ndarray, mean: np.ndarray, std: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Standardised model input, zero on inactive windows (``mask``), float32."""
    out = (feats - mean) / std
    if mask is not None:
        out = out * mask[..., None]
    return out.astype(np.float32)


def compact(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop inactive months and left-align each sequence: [N, T, K] -> same shape, new mask.

    The stream takes no step for a month without spending, so training must not either.
    """
    out = np.zeros_like(x)
    lengths = mask.sum(1)
    for i in range(len(x)):
        out[i, : lengths[i]] = x[i, mask[i]]
    new_mask = np.arange(x.shape[1])[None, :] < lengths[:, None]
    return out, new_mask
