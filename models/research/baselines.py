"""The paper's other three architectures, for comparison with the recurrent predictor.

All expose ``features(x, mask) -> [B, T, H]``: the hidden activations the
segmentation would cluster. Feed-forward models see one window at a time, so
their features have no memory; the autoencoders see no personality target.
"""

from __future__ import annotations

import torch
from torch import nn

from ..personality_lstm import PersonalityLSTM


class FeedForwardPredictor(nn.Module):
    """One window's spending -> that window's evinced personality, through H hidden units."""

    def __init__(self, n_features: int, hidden_size: int = 8, n_traits: int = 5):
        super().__init__()
        self.hidden_size = hidden_size
        self.encoder = nn.Sequential(nn.Linear(n_features, hidden_size), nn.Tanh())
        self.head = nn.Linear(hidden_size, n_traits)

    def features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.head(h), h


class FeedForwardAutoencoder(nn.Module):
    """One window's spending -> H -> the same window's spending."""

    def __init__(self, n_features: int, hidden_size: int = 8):
        super().__init__()
        self.hidden_size = hidden_size
        self.encoder = nn.Sequential(nn.Linear(n_features, hidden_size), nn.Tanh())
        self.decoder = nn.Linear(hidden_size, n_features)

    def features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.decoder(h), h


class RecurrentAutoencoder(nn.Module):
    """An LSTM over the windows whose state must reconstruct each step's spending."""

    def __init__(self, n_features: int, hidden_size: int = 8):
        super().__init__()
        self.hidden_size = hidden_size
        self.rnn = PersonalityLSTM(n_features, hidden_size, n_traits=n_features)  # the head decodes spending

    def features(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.rnn(x, mask)[1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.rnn(x, mask)


class RecurrentPredictor(PersonalityLSTM):
    """The product's model, under the name the comparison uses."""

    def features(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self(x, mask)[1]


ARCHITECTURES = {
    "recurrent_predictor": RecurrentPredictor,
    "recurrent_autoencoder": RecurrentAutoencoder,
    "feedforward_predictor": FeedForwardPredictor,
    "feedforward_autoencoder": FeedForwardAutoencoder,
}
