import numpy as np
import pytest

from segstream.models.artefact import ModelArtefact, TorchSequenceModel
from segstream.models.training.lstm import TrainConfig, train
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank


def tiny_artefact(seed=0):
    bank = SyntheticBank(GeneratorConfig(customers=120, months=6, seed=seed))
    spend, active = bank.monthly_spend()
    return train(spend, active, TrainConfig(hidden_size=4, n_segments=5, epochs=3, seed=seed), log=lambda *_: None)


@pytest.fixture(scope="module")
def tiny():
    """One trained tiny model for the tests that only read it (training twice is the determinism test's point)."""
    return tiny_artefact()


def test_training_is_deterministic_for_a_seed(tiny):
    assert tiny_artefact().version == tiny.version


def test_save_load_round_trip(tmp_path, tiny):
    art = tiny
    art.save(tmp_path / "m.pt")
    back = ModelArtefact.load(tmp_path / "m.pt")
    assert back.version == art.version
    np.testing.assert_array_equal(back.centroids, art.centroids)
    x = np.random.default_rng(0).random((3, len(art.categories))).astype(np.float32)
    z = np.zeros((3, 4), np.float32)
    for a, b in zip(TorchSequenceModel(art).step(x, z, z), TorchSequenceModel(back).step(x, z, z)):
        np.testing.assert_allclose(a, b)


def test_head_in_numpy_matches_torch(tiny):
    m = TorchSequenceModel(tiny)
    x = np.random.default_rng(1).random((5, len(m.artefact.categories))).astype(np.float32)
    z = np.zeros((5, 4), np.float32)
    h, _, traits = m.step(x, z, z)
    np.testing.assert_allclose(m.traits_of(h), traits, rtol=1e-5, atol=1e-6)


def test_shipped_artefact_loads():
    art = ModelArtefact.load()
    assert art.version.startswith("lstm-h") and art.centroids.shape[1] == art.hidden_size


def test_a_confidence_fitted_on_another_feature_set_is_dropped_and_said(tmp_path, tiny, caplog):
    """An artefact calibrated by an earlier release (eleven features before 0.8.6) must not be scored
    on this release's features; the operator is told to run `segstream calibrate`."""
    from dataclasses import replace

    from segstream.core.confidence import FEATURES, ConfidenceModel

    old = ConfidenceModel(np.zeros(len(FEATURES) - 1), 0.0, np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    replace(tiny, confidence=old).save(tmp_path / "old.pt")
    with caplog.at_level("WARNING", logger="segstream.model"):
        back = ModelArtefact.load(tmp_path / "old.pt")
    assert back.confidence is None
    assert "segstream calibrate" in caplog.text and f"{len(FEATURES) - 1} features" in caplog.text
    fresh = ConfidenceModel(np.zeros(len(FEATURES)), 0.0, np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    replace(tiny, confidence=fresh).save(tmp_path / "new.pt")
    assert ModelArtefact.load(tmp_path / "new.pt").confidence is not None
