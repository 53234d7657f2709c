"""The seeds' classic segmentation of card holders, as a workbench a bank's analyst can rerun.

Seeds 000-002 segment the CC GENERAL table (one row per card holder, 17 behavioural
columns) by k-means with the elbow, look at it through PCA, try DBSCAN, GMM and
hierarchical clustering, read the clusters with a decision tree (seed 002: 94%) and
attach savings / loan / wealth recommendations (seed 001). Everything here is
scikit-learn; what is ours is the cleaning the seeds describe, the choice of
settings, the recommendation mapping and the report.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from segstream.core.profiles import FAMILIES

from ..training.surrogate import explain

# CC GENERAL columns -> the stream's product families. The stream reads personality from
# categories; CC GENERAL has none, so a segment's family follows its card behaviour instead,
# judged on the segment's mean relative to everyone's in standard deviations (high: > 0.5),
# first match wins:
FAMILY_RULES: tuple[tuple[str, str, str], ...] = (
    (
        "budgeting help",
        "CASH_ADVANCE high and PRC_FULL_PAYMENT below average",
        "lives on cash advances and revolves the balance: a budget and a cheaper instalment plan",
    ),
    (
        "wealth management",
        "PURCHASES high and PRC_FULL_PAYMENT above average",
        "spends a lot and pays in full: surplus to invest",
    ),
    (
        "credit/loan product",
        "INSTALLMENTS_PURCHASES above average",
        "buys in instalments: a consolidated loan or a card with instalment terms",
    ),
    ("savings plan", "otherwise", "little activity on the card: a goal-based savings plan"),
)
assert {f for f, _, _ in FAMILY_RULES} <= set(FAMILIES)


@dataclass
class ClassicConfig:
    k: int = 4  # seed 002's choice; the k table beside it lets an analyst pick another
    k_range: tuple[int, int] = (2, 10)
    dbscan_min_samples: int = 0  # 0: twice the number of features
    tree_depth: int = 3
    sample: int = 4000  # rows for silhouette scores (O(n^2)); every row for the rest
    seed: int = 0
    id_columns: tuple[str, ...] = ("CUST_ID",)


@dataclass
class Table:
    frame: pd.DataFrame  # cleaned numeric features
    ids: pd.Series | None
    filled: dict[str, int] = field(default_factory=dict)  # column -> missing values filled with the median


def load_table(path: Path, cfg: ClassicConfig) -> Table:
    """Any numeric customer table; CC GENERAL's missing MINIMUM_PAYMENTS and CREDIT_LIMIT
    (313 and 1 rows) are filled with the column median, as the seeds do with mean or median."""
    df = pd.read_csv(path)
    ids = next((df[c] for c in cfg.id_columns if c in df.columns), None)
    num = df.select_dtypes("number")
    if num.shape[1] < 2:
        raise ValueError(f"{path}: fewer than two numeric columns")
    filled = {c: int(n) for c, n in num.isna().sum().items() if n}
    return Table(num.fillna(num.median()), ids, filled)


def _scores(x: np.ndarray, labels: np.ndarray, cfg: ClassicConfig) -> dict[str, float]:
    ok = labels >= 0
    x, labels = x[ok], labels[ok]
    if len(set(labels.tolist())) < 2:
        return {"silhouette": float("nan"), "davies_bouldin": float("nan"), "calinski_harabasz": float("nan")}
    return {
        "silhouette": float(silhouette_score(x, labels, sample_size=min(cfg.sample, len(x)), random_state=cfg.seed)),
        "davies_bouldin": float(davies_bouldin_score(x, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(x, labels)),
    }


def _dbscan_eps(x: np.ndarray, min_samples: int) -> float:
    """The knee of the sorted k-distance curve (the farthest point from the line joining its ends)."""
    d = np.sort(NearestNeighbors(n_neighbors=min_samples).fit(x).kneighbors(x)[0][:, -1])
    i = np.arange(len(d))
    line = d[0] + (d[-1] - d[0]) * i / (len(d) - 1)
    return float(d[np.argmax(line - d)])


def _family(z: pd.Series) -> tuple[str, str]:
    def high(c: str) -> bool:
        return c in z and z[c] > 0.5

    def low(c: str) -> bool:
        return c in z and z[c] < 0

    def above(c: str) -> bool:
        return c in z and z[c] > 0

    checks = {
        "budgeting help": high("CASH_ADVANCE") and low("PRC_FULL_PAYMENT"),
        "wealth management": high("PURCHASES") and above("PRC_FULL_PAYMENT"),
        "credit/loan product": above("INSTALLMENTS_PURCHASES"),
    }
    for family, _, why in FAMILY_RULES:
        if checks.get(family, True):
            return family, why
    return FAMILY_RULES[-1][0], FAMILY_RULES[-1][2]


def run(path: Path, cfg: ClassicConfig = ClassicConfig()) -> tuple[dict[str, Any], dict[str, Any]]:
    """(results for --json and the report, arrays for the plots)."""
    t0 = time.perf_counter()
    table = load_table(path, cfg)
    names = list(table.frame.columns)
    x = StandardScaler().fit_transform(table.frame.to_numpy(np.float64))
    elbow = []
    for k in range(cfg.k_range[0], cfg.k_range[1] + 1):
        km = KMeans(k, n_init=10, random_state=cfg.seed).fit(x)
        elbow.append({"k": k, "inertia": float(km.inertia_), **_scores(x, km.labels_, cfg)})
    km = KMeans(cfg.k, n_init=10, random_state=cfg.seed).fit(x)
    labels = km.labels_
    methods = _methods(x, labels, cfg)
    pca = PCA(2, random_state=cfg.seed).fit(x)
    xy = pca.transform(x)
    rules = explain(table.frame.to_numpy(), labels, names, depth=cfg.tree_depth, seed=cfg.seed)
    segments = _segments(table.frame, labels, rules.rules, cfg)
    res = {
        "data": str(path),
        "rows": int(len(x)),
        "features": names,
        "filled_with_median": table.filled,
        "elbow": elbow,
        "k": cfg.k,
        "methods": methods,
        "pca_explained_variance": [float(v) for v in pca.explained_variance_ratio_],
        "tree": {
            "depth": rules.depth,
            "held_out_accuracy": rules.accuracy,
            "held_out_accuracy_full_depth": rules.accuracy_full_depth,
            "test_rows": rules.test_rows,
        },
        "segments": segments,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    return res, {"xy": xy, "labels": labels}


def _methods(x: np.ndarray, labels: np.ndarray, cfg: ClassicConfig) -> list[dict[str, Any]]:
    """k-means beside GMM, Ward and DBSCAN on the same standardised table: clusters, noise and
    agreement with k-means (ARI)."""
    min_samples = cfg.dbscan_min_samples or 2 * x.shape[1]
    eps = _dbscan_eps(x, min_samples)
    others = {
        "gmm": GaussianMixture(cfg.k, covariance_type="full", random_state=cfg.seed).fit(x).predict(x),
        "agglomerative_ward": AgglomerativeClustering(cfg.k, linkage="ward").fit_predict(x),
        "dbscan": DBSCAN(eps=eps, min_samples=min_samples).fit_predict(x),
    }
    methods = [
        {
            "method": f"kmeans (k={cfg.k})",
            "clusters": cfg.k,
            "noise_share": 0.0,
            "ari_vs_kmeans": 1.0,
            **_scores(x, labels, cfg),
        }
    ]
    settings = {
        "gmm": f"k={cfg.k}, full covariance",
        "agglomerative_ward": f"k={cfg.k}, Ward linkage",
        "dbscan": f"eps={eps:.2f} (k-distance knee), min_samples={min_samples}",
    }
    for name, lab in others.items():
        methods.append(
            {
                "method": f"{name} ({settings[name]})",
                "clusters": int(len(set(lab.tolist()) - {-1})),
                "noise_share": float((lab < 0).mean()),
                "ari_vs_kmeans": float(adjusted_rand_score(labels, lab)),
                **_scores(x, lab, cfg),
            }
        )
    return methods


def _segments(frame, labels: np.ndarray, rules: dict, cfg: ClassicConfig) -> list[dict[str, Any]]:
    """Each k-means segment: its size, recommendation family, what stands out (the features
    furthest from the mean, by z-score) and the tree's rules."""
    z = (frame.groupby(labels).mean() - frame.mean()) / frame.std()
    med = frame.groupby(labels).median()
    segments = []
    for seg in range(cfg.k):
        family, why = _family(z.loc[seg])
        top = z.loc[seg].abs().sort_values(ascending=False).index[:4]
        segments.append(
            {
                "segment": seg,
                "customers": int((labels == seg).sum()),
                "family": family,
                "why": family + ": " + why,
                "stands_out": {c: float(med.loc[seg, c]) for c in top},
                "rules": rules.get(seg, []),
            }
        )
    return segments


def write_report(res: dict[str, Any], arrays: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _plots(res, arrays, folder)
    f = lambda v: "–" if v != v else f"{v:.3f}"  # noqa: E731 (NaN as a dash)
    lines = [
        f"# Classic segmentation of `{Path(res['data']).name}`",
        "",
        f"{res['rows']} customers, {len(res['features'])} numeric features, standardised; "
        f"missing values filled with the median: {res['filled_with_median'] or 'none'}.",
        "",
        "## k-means over k",
        "",
        "![elbow, silhouette, Davies-Bouldin](elbow.png)",
        "",
        "| k | inertia | silhouette | Davies-Bouldin | Calinski-Harabasz |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['k']} | {r['inertia']:.0f} | {f(r['silhouette'])} | {f(r['davies_bouldin'])} | "
        f"{r['calinski_harabasz']:.0f} |"
        for r in res["elbow"]
    ]
    lines += [
        "",
        f"## Methods at k = {res['k']}",
        "",
        "| method | clusters | noise | silhouette | Davies-Bouldin | ARI vs k-means |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {m['method']} | {m['clusters']} | {m['noise_share']:.1%} | {f(m['silhouette'])} | "
        f"{f(m['davies_bouldin'])} | {m['ari_vs_kmeans']:.2f} |"
        for m in res["methods"]
    ]
    t = res["tree"]
    lines += [
        "",
        "## PCA view",
        "",
        "![PCA](pca.png)",
        "",
        "## Segments as rules",
        "",
        f"A decision tree of depth {t['depth']} predicts the k-means segment from the raw columns with "
        f"**{t['held_out_accuracy']:.1%}** accuracy on {t['test_rows']} held-out customers "
        f"(an unpruned tree, as seed 002 uses: {t['held_out_accuracy_full_depth']:.1%}).",
        "",
    ]
    for s in res["segments"]:
        lines += [
            f"### Segment {s['segment']}: {s['customers']} customers, {s['family']}",
            "",
            f"- why: {s['why']}",
            "- stands out (segment median): " + ", ".join(f"{c} {v:,.2f}" for c, v in s["stands_out"].items()),
        ]
        lines += [f"- rule: {r}" for r in s["rules"]] or ["- no leaf of the shallow tree is mostly this segment"]
        lines.append("")
    lines += [
        f"Recommendation families follow `models/research/classic.py::FAMILY_RULES` "
        f"(CC GENERAL has no categories, so its segments are read by card behaviour); "
        f"computed in {res['seconds']} s.",
        "",
    ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    (folder / "classic.json").write_text(json.dumps(res, indent=1))
    return path


def _plots(res: dict[str, Any], arrays: dict[str, Any], folder: Path) -> None:
    """The elbow (inertia, silhouette, Davies-Bouldin over k) and the segments on two principal axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    el = res["elbow"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    ks = [r["k"] for r in el]
    for ax, key, title in zip(
        axes,
        ("inertia", "silhouette", "davies_bouldin"),
        ("inertia (elbow)", "silhouette (higher is better)", "Davies-Bouldin (lower is better)"),
    ):
        ax.plot(ks, [r[key] for r in el], "o-")
        ax.axvline(res["k"], color="grey", ls=":")
        ax.set_title(title), ax.set_xlabel("k")
    fig.tight_layout(), fig.savefig(folder / "elbow.png", dpi=100), plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    xy, lab = arrays["xy"], arrays["labels"]
    for seg in sorted(set(lab.tolist())):
        sel = lab == seg
        ax.scatter(xy[sel, 0], xy[sel, 1], s=3, alpha=0.5, label=f"segment {seg}")
    ev = res["pca_explained_variance"]
    ax.set_xlabel(f"PC1 ({ev[0]:.0%} of variance)"), ax.set_ylabel(f"PC2 ({ev[1]:.0%})")
    ax.legend(markerscale=4), ax.set_title("k-means segments on the first two principal components")
    fig.tight_layout(), fig.savefig(folder / "pca.png", dpi=100), plt.close(fig)
