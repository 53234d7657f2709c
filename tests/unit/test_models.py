"""The paper's architectures: shapes, determinism, and its central claim on generated data."""

import numpy as np
import pytest
import torch

from segstream.models.research.baselines import ARCHITECTURES
from segstream.models.research.evaluation import EvalConfig, features, prepare, score, train_architecture, transfer
from segstream.models.training.lstm import TrainConfig


@pytest.fixture(scope="module")
def data():
    train, norm = prepare(900, 12, seed=21)
    test, _ = prepare(500, 12, seed=22, norm=norm)
    return train, test


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_shapes(name, data):
    train, _ = data
    m = ARCHITECTURES[name](train.x.shape[2], 3)
    x, mask = torch.from_numpy(train.x[:7]), torch.from_numpy(train.mask[:7])
    out, hidden = m(x, mask)
    assert hidden.shape == (7, train.x.shape[1], 3)
    assert m.features(x, mask).shape == hidden.shape
    assert out.shape[:2] == (7, train.x.shape[1])


def test_training_is_deterministic(data):
    train, test = data
    cfg = TrainConfig(hidden_size=4, epochs=2, seed=5)
    a = features(train_architecture("feedforward_predictor", train, 4, cfg), test)
    b = features(train_architecture("feedforward_predictor", train, 4, cfg), test)
    np.testing.assert_array_equal(a, b)


def test_recurrent_predictor_gives_finer_segments_than_feedforward(data):
    """Maree & Omlin: recurrent hidden states form micro-segments, feed-forward only coarse ones."""
    train, test = data
    cfg = TrainConfig(hidden_size=8, epochs=25, seed=0)
    rec = score(features(train_architecture("recurrent_predictor", train, 8, cfg), test), test, 3, 0)
    ff = score(features(train_architecture("feedforward_predictor", train, 8, cfg), test), test, 3, 0)
    assert rec["ari_micro"] > ff["ari_micro"], (rec, ff)
    assert rec["stability"] > ff["stability"], (rec, ff)


def test_transfer_reports_weights_like_the_paper(data):
    train, test = data
    cfg = EvalConfig(hidden_size=4, transfer_repeats=2, transfer_steps=5, transfer_train=50)
    tc = TrainConfig(hidden_size=4, epochs=1)
    models = {n: train_architecture(n, train, 4, tc) for n in ("recurrent_predictor", "feedforward_predictor")}
    rows = transfer(models, test, cfg)
    assert len(rows) == 8
    for r in rows:
        if r["init"] == "transfer":
            assert r["trainable_weights"] == 4 + 1 < r["total_weights"]
        else:
            assert r["trainable_weights"] == r["total_weights"]
        assert np.isfinite(r["val_mse"]) and r["ci95"] >= 0


def test_berka_real_data_loads_as_sequences(data):
    from pathlib import Path

    from segstream.models.research.evaluation import berka

    folder = Path(__file__).resolve().parents[3] / "shared" / "data" / "berka"
    if not folder.exists():
        pytest.skip("../shared/data/berka not beside the checkout")
    _, norm = prepare(50, 2, seed=1)
    x, mask, y = berka(folder, norm, months=6)
    assert x.shape == (682, 6, 30) and mask.all()
    assert 0.05 < y.mean() < 0.2  # loan status B or D: 76 of 682 in PKDD'99
    assert np.isfinite(x).all()
