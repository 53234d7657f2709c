"""Training on a bank's own export: the windows are the worker's, the artefact serves, the report opens."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segstream.cli import main
from segstream.config import Settings
from segstream.models.artefact import ModelArtefact
from segstream.models.training.history import load_history
from segstream.producers.bank_export import write_sample_export
from segstream.producers.export import ExportMapping
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank

GEN = GeneratorConfig(customers=160, months=14, seed=9)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return write_sample_export(tmp_path_factory.mktemp("bank"), GEN)


def test_windows_from_the_export_are_the_generators_months(export):
    data, mapping = export
    hist = load_history(data, ExportMapping.load(mapping), Settings())
    spend, active = SyntheticBank(GEN).monthly_spend()
    rows = [hist.customers.index("DE" + c[1:]) for c in SyntheticBank(GEN).customer_ids.tolist()]
    assert hist.first_month == GEN.start_month - 1 and hist.spend_fraction.shape[1] == GEN.months
    # times are written in Berlin time to the minute: a purchase near midnight on the last day of
    # a month may fall in the neighbouring window; everything else is the same number
    same = np.isclose(hist.spend_fraction[rows], spend, atol=1e-3).all(axis=2)
    assert same.mean() > 0.99
    assert (hist.active[rows] == active).mean() > 0.99


def test_train_on_transactions_writes_a_serving_artefact_and_a_report(export, tmp_path, capsys):
    data, mapping = export
    out = tmp_path / "bank.pt"
    assert main(["train", "--transactions", str(data), "--mapping", str(mapping), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    art = ModelArtefact.load(out)
    assert printed["model_version"] == art.version and art.trained_on["split"] == "chronological"
    assert 4 <= len(art.centroids) <= 32 and len(art.centroids) == printed["n_segments"]
    assert art.calibration is not None
    report = (tmp_path / "bank.report" / "report.md").read_text()
    for section in ("## Data", "## Training", "## Segments", "## Stability", "| k | inertia | silhouette |"):
        assert section in report
    assert (tmp_path / "bank.report" / "loss_curve.png").stat().st_size > 1000
    curve = np.array(art.trained_on["curve"])
    assert curve[-1, 1] < curve[0, 1]  # validation on later months improved while training on earlier ones
