"""The classic workbench: its scores are scikit-learn's, its rule tree is scored on held-out rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from segstream.cli import main
from segstream.models.research.classic import ClassicConfig, run

CC = Path(__file__).resolve().parents[3] / "shared" / "data" / "cc_general" / "CC_GENERAL.csv"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    x, _ = make_blobs(600, n_features=5, centers=4, random_state=3)
    df = pd.DataFrame(
        x * [1, 10, 100, 1, 5] + 50, columns=["BALANCE", "PURCHASES", "CASH_ADVANCE", "TENURE", "PRC_FULL_PAYMENT"]
    )
    df.insert(0, "CUST_ID", [f"C{i}" for i in range(len(df))])
    df.loc[[3, 17, 40], "BALANCE"] = np.nan
    path = tmp_path_factory.mktemp("classic") / "t.csv"
    df.to_csv(path, index=False)
    return path, df


def test_scores_are_scikit_learns(table):
    path, df = table
    cfg = ClassicConfig(k=4, k_range=(2, 5), sample=10_000)
    res, arrays = run(path, cfg)
    num = df.drop(columns="CUST_ID")
    x = StandardScaler().fit_transform(num.fillna(num.median()))
    assert res["filled_with_median"] == {"BALANCE": 3}
    for row in res["elbow"]:
        lab = KMeans(row["k"], n_init=10, random_state=0).fit_predict(x)
        assert row["silhouette"] == pytest.approx(silhouette_score(x, lab), abs=1e-9)
        assert row["davies_bouldin"] == pytest.approx(davies_bouldin_score(x, lab))
        assert row["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(x, lab))
    assert {m["method"].split(" ")[0] for m in res["methods"]} == {"kmeans", "gmm", "agglomerative_ward", "dbscan"}
    assert sum(s["customers"] for s in res["segments"]) == len(df)


def test_the_rule_tree_is_scored_on_held_out_rows(table):
    path, df = table
    res, arrays = run(path, ClassicConfig(k=4, k_range=(2, 4)))
    num = df.drop(columns="CUST_ID")
    num = num.fillna(num.median()).to_numpy()
    xtr, xte, ytr, yte = train_test_split(
        num, arrays["labels"], test_size=0.3, random_state=0, stratify=arrays["labels"]
    )
    tree = DecisionTreeClassifier(max_depth=3, random_state=0, min_samples_leaf=5).fit(xtr, ytr)
    assert res["tree"]["test_rows"] == len(yte)
    assert res["tree"]["held_out_accuracy"] == pytest.approx(tree.score(xte, yte))
    assert all(r.endswith("pure)") and ("≤" in r or ">" in r) for s in res["segments"] for r in s["rules"])


@pytest.mark.skipif(not CC.exists(), reason="needs ../shared/data/cc_general")
def test_cc_general_report(tmp_path, capsys):
    assert main(["classic", "--data", str(CC), "--out", str(tmp_path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["rows"] == 8950 and res["filled_with_median"] == {"CREDIT_LIMIT": 1, "MINIMUM_PAYMENTS": 313}
    assert res["tree"]["held_out_accuracy"] > 0.8
    assert {s["family"] for s in res["segments"]} == {
        "savings plan",
        "credit/loan product",
        "wealth management",
        "budgeting help",
    }
    assert (tmp_path / "report.md").exists() and (tmp_path / "pca.png").stat().st_size > 10_000
