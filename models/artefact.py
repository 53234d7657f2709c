"""A trained model as one versioned file, and the adapter the engine calls.

The file holds everything serving needs and nothing it must guess: weights,
config, category list, input and output normalisers, the k-means centroids the
stream starts from, and a version string derived from the weights.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from segstream.core.change import Calibration
from segstream.core.confidence import FEATURES, STATE_FEATURES, ConfidenceModel
from segstream.core.personality import CATEGORIES

from .features import standardise, transform
from .personality_lstm import PersonalityLSTM

DEFAULT_PATH = Path(__file__).parent / "artefacts" / "default.pt"
log = logging.getLogger("segstream.model")


@dataclass
class ModelArtefact:
    model: PersonalityLSTM
    x_mean: np.ndarray  # [K] input normaliser
    x_std: np.ndarray
    centroids: np.ndarray  # [k, H] initial micro-segment centroids
    categories: tuple[str, ...] = CATEGORIES
    trained_on: dict = field(default_factory=dict)
    version: str = ""
    calibration: Calibration | None = None  # the change statistic's scales (format 2)
    confidence: ConfidenceModel | None = None  # a change event's label: its probability of being right (0.8)
    current_confidence: ConfidenceModel | None = None  # a customer's announced segment, read from the state

    def __post_init__(self) -> None:
        if not self.version:
            digest = hashlib.sha256()
            for t in self.model.state_dict().values():
                digest.update(t.detach().cpu().numpy().tobytes())
            self.version = f"lstm-h{self.model.hidden_size}-{digest.hexdigest()[:10]}"

    @property
    def hidden_size(self) -> int:
        return self.model.hidden_size

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "format": 2,
                "version": self.version,
                "n_features": self.model.n_features,
                "hidden_size": self.model.hidden_size,
                "state_dict": self.model.state_dict(),
                "x_mean": torch.from_numpy(self.x_mean.astype(np.float32)),
                "x_std": torch.from_numpy(self.x_std.astype(np.float32)),
                "centroids": torch.from_numpy(self.centroids.astype(np.float32)),
                "categories": list(self.categories),
                "trained_on": self.trained_on,
                **(
                    {}
                    if self.calibration is None
                    else {
                        f"calibration_{k}": torch.from_numpy(np.asarray(v, np.float32))
                        for k, v in vars(self.calibration).items()
                    }
                ),
                **_tensors("confidence_", self.confidence),
                **_tensors("current_confidence_", self.current_confidence),
            },
            path,
        )

    @classmethod
    def load(cls, path: Path | None = None) -> ModelArtefact:
        blob = torch.load(path or DEFAULT_PATH, map_location="cpu", weights_only=True)
        if tuple(blob["categories"]) != CATEGORIES:
            raise ValueError(f"{path}: trained on another category list; retrain with `segstream train`")
        model = PersonalityLSTM(blob["n_features"], blob["hidden_size"])
        model.load_state_dict(blob["state_dict"])
        model.eval()
        return cls(
            model=model,
            x_mean=blob["x_mean"].numpy(),
            x_std=blob["x_std"].numpy(),
            centroids=blob["centroids"].numpy(),
            categories=tuple(blob["categories"]),
            trained_on=blob["trained_on"],
            version=blob["version"],
            calibration=Calibration(
                **{
                    f: _number(blob[f"calibration_{f}"])
                    for f in Calibration.__dataclass_fields__
                    if f"calibration_{f}" in blob  # the volume terms came in 0.8
                }
            )
            if "calibration_season" in blob
            else None,
            confidence=_confidence(blob, "confidence_", len(FEATURES)),
            current_confidence=_confidence(blob, "current_confidence_", len(STATE_FEATURES)),
        )

    def normalise(self, spend_fraction: np.ndarray) -> np.ndarray:
        return standardise(transform(spend_fraction), self.x_mean, self.x_std)


def _number(t: torch.Tensor) -> np.ndarray | float:
    a = t.numpy().astype(np.float64)
    return float(a) if a.ndim == 0 else a


def _tensors(prefix: str, model: ConfidenceModel | None) -> dict[str, torch.Tensor]:
    if model is None:
        return {}
    return {prefix + k: torch.tensor(np.asarray(v, np.float64)) for k, v in vars(model).items() if v is not None}


def _confidence(blob: dict, prefix: str, n_features: int) -> ConfidenceModel | None:
    if prefix + "coef" not in blob:
        return None  # fitted from 0.8 on: older artefacts announce the margin
    get = {k[len(prefix) :]: v.numpy() for k, v in blob.items() if k.startswith(prefix)}
    if len(get["coef"]) != n_features:
        # fitted on another feature set (an artefact calibrated by an earlier release): the margin
        # until `segstream calibrate` refits it, and no confidence setting holds anything meanwhile
        log.warning(
            "the artefact's %sconfidence was fitted on %d features, this release reads %d: events carry "
            "the margin and first/min_confidence hold nothing until `segstream calibrate` refits it",
            prefix.removesuffix("confidence_").replace("_", " "),
            len(get["coef"]),
            n_features,
        )
        return None
    get["intercept"] = float(get["intercept"])
    return ConfidenceModel(**get)


class TorchSequenceModel:
    """The engine's :class:`~segstream.core.ports.SequenceModel`: one torch call per batch."""

    def __init__(self, artefact: ModelArtefact):
        self.artefact = artefact
        self.version = artefact.version
        self.hidden_size = artefact.hidden_size
        self._model = artefact.model.eval()
        self.calibration = artefact.calibration
        self.confidence = artefact.confidence
        self._head_w = artefact.model.head.weight.detach().numpy().T.copy()
        self._head_b = artefact.model.head.bias.detach().numpy().copy()

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xt = torch.from_numpy(self.artefact.normalise(x))
        with torch.inference_mode():
            h2, c2, traits = self._model.step(xt, torch.from_numpy(h), torch.from_numpy(c))
        return h2.numpy(), c2.numpy(), traits.numpy()

    def traits_of(self, h: np.ndarray) -> np.ndarray:
        # The head is linear: numpy keeps this off the torch call budget.
        return np.asarray(h, np.float32) @ self._head_w + self._head_b
