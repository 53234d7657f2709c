"""The training report a person opens: where the data came from, how training went, which
segments came out and how stable a customer's segment is from window to window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from segstream.core.kmeans import nearest
from segstream.core.profiles import profiles

from ..artefact import ModelArtefact, TorchSequenceModel
from ..features import compact
from .history import History


def segment_paths(art: ModelArtefact, h: History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer and active window: hidden state and nearest segment; and the mask."""
    x, mask = compact(h.spend_fraction, h.active)
    with torch.inference_mode():
        _, hidden = art.model(torch.from_numpy(art.normalise(x) * mask[..., None]), torch.from_numpy(mask))
    hidden = hidden.numpy()
    seg = np.full(mask.shape, -1)
    seg[mask], _, _ = nearest(art.centroids, hidden[mask])
    return hidden, seg, mask


def write_report(art: ModelArtefact, h: History, folder: Path, source: str, warmup: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    t = art.trained_on
    kept, sizes, ari = stability(art, h, warmup)
    k = len(art.centroids)
    model = TorchSequenceModel(art)
    plots(t, k, folder)
    r = h.report
    reasons = ", ".join(f"{n} {why}" for why, n in sorted(r.summary()["reasons"].items())) or "none"
    lines = [
        f"# Training report: model {art.version}",
        "",
        "## Data",
        "",
        f"- export `{source}`: {r.lines} lines, {r.events} purchases, {r.credits} credits skipped, "
        f"{r.other} purchases with no personality category (cash, taxes, ...), {len(r.rejected)} refused ({reasons})",
        f"- {len(h.customers)} customers, {h.spend_fraction.shape[1]} monthly windows from {h.first_window}, "
        f"{int(h.active.sum())} windows with spending",
        "",
        "## Training",
        "",
        f"- split: {t.get('split')}"
        + (f", cut before window {t['cut_month']} (later windows validate)" if "cut_month" in t else ""),
        f"- epochs {t.get('epochs')}, best validation MSE {t.get('val_mse', float('nan')):.4f} "
        f"(standardised Big-Five targets; 1.0 = no better than the mean)",
        "- ![loss curve](loss_curve.png)",
        "",
        "## Segments",
        "",
    ]
    if t.get("segment_choice"):
        lines += [
            f"{k} segments: the best silhouette of k-means on the hidden states "
            "(![elbow and silhouette](segment_choice.png)).",
            "",
            "| k | inertia | silhouette |",
            "|---|---|---|",
        ]
        lines += [f"| {row['k']} | {row['inertia']:.0f} | {row['silhouette']:.3f} |" for row in t["segment_choice"]]
        lines.append("")
    else:
        lines += [f"{k} segments, as asked (`--segments`).", ""]
    lines += [
        "| segment | label | customers (last window) | dominant, second | recommendation |",
        "|---|---|---|---|---|",
    ]
    for p in profiles(model.traits_of(art.centroids)):
        lines.append(f"| {p.segment} | {p.label} | {sizes[p.segment]} | {p.dominant}, {p.second} | {p.family} |")
    lines += [
        "",
        "## Stability",
        "",
        f"- a customer's nearest segment is the same as in their previous window {kept:.1%} of the time "
        f"(after {warmup} windows; the worker's emission policy smooths this further)",
        f"- k-means with another seed on the same states agrees with these segments at ARI {ari:.2f}",
        "",
    ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def stability(art: ModelArtefact, h: History, warmup: int) -> tuple[float, np.ndarray, float]:
    """How often a customer's nearest segment stays from one window to the next (after warm-up),
    the segments' sizes at each customer's last window, and how far k-means with another seed
    agrees (ARI) on the same states."""
    hidden, seg, mask = segment_paths(art, h)
    steps = np.arange(mask.shape[1])[None, :]
    warm = mask & (steps >= warmup - 1)
    pairs = warm[:, 1:] & warm[:, :-1]
    kept = float((seg[:, 1:] == seg[:, :-1])[pairs].mean()) if pairs.any() else float("nan")
    lengths = mask.sum(1)
    last = seg[np.arange(len(seg)), np.maximum(lengths - 1, 0)][lengths >= warmup]
    k = len(art.centroids)
    sizes = np.bincount(last, minlength=k)
    pts = hidden[warm]
    sub = pts[np.random.default_rng(0).choice(len(pts), min(len(pts), 20000), replace=False)]
    other = KMeans(k, n_init=4, random_state=99).fit_predict(sub)
    return kept, sizes, float(adjusted_rand_score(nearest(art.centroids, sub)[0], other))


def plots(t: dict, k: int, folder: Path) -> None:
    """The loss curve and, where training chose k, the elbow and silhouette."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    curve = np.array(t.get("curve") or [(np.nan, np.nan)])
    ax.plot(np.arange(1, len(curve) + 1), curve[:, 0], label="train")
    ax.plot(np.arange(1, len(curve) + 1), curve[:, 1], label="validation")
    ax.set_xlabel("epoch"), ax.set_ylabel("MSE (standardised traits)"), ax.legend()
    fig.tight_layout(), fig.savefig(folder / "loss_curve.png", dpi=110), plt.close(fig)
    if t.get("segment_choice"):
        tab = t["segment_choice"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([r["k"] for r in tab], [r["silhouette"] for r in tab], "o-", label="silhouette")
        ax.axvline(k, color="grey", ls=":")
        ax2 = ax.twinx()
        ax2.plot([r["k"] for r in tab], [r["inertia"] for r in tab], "s--", color="tab:orange", label="inertia")
        ax.set_xlabel("segments"), ax.set_ylabel("silhouette"), ax2.set_ylabel("inertia")
        fig.tight_layout(), fig.savefig(folder / "segment_choice.png", dpi=110), plt.close(fig)
