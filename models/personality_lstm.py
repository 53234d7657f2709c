"""The recurrent spending-personality predictor (Maree & Omlin's recurrent predictor).

An LSTM reads one window of category spending per step and a linear head reads
the customer's Big-Five profile off the hidden state. Trained sequence-to-
sequence, so the hidden state is a personality estimate at *every* step: the
stream steps it one window at a time and clusters it as it goes.
"""

from __future__ import annotations

import torch
from torch import nn


class PersonalityLSTM(nn.Module):
    def __init__(self, n_features: int, hidden_size: int = 8, n_traits: int = 5):
        super().__init__()
        self.n_features = n_features
        self.hidden_size = hidden_size
        self.cell = nn.LSTMCell(n_features, hidden_size)
        self.head = nn.Linear(hidden_size, n_traits)

    def step(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, c = self.cell(x, (h, c))
        return h, c, self.head(h)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, K], mask [B, T] of real steps -> (traits [B, T, 5], hidden [B, T, H]).

        Padded steps leave the state unchanged, as a month without spending does in the stream.
        """
        b, t, _ = x.shape
        h = x.new_zeros(b, self.hidden_size)
        c = x.new_zeros(b, self.hidden_size)
        hs = []
        for i in range(t):
            h2, c2 = self.cell(x[:, i], (h, c))
            m = mask[:, i, None]
            h, c = torch.where(m, h2, h), torch.where(m, c2, c)
            hs.append(h)
        hidden = torch.stack(hs, 1)
        return self.head(hidden), hidden
