"""Which change chart and shadow restart: candidates side by side on the calibration banks.

A detector's statistic is one of the confidence's features, so each candidate gets its own
confidence fitted first (``segstream calibrate`` on a copy of the artefact), then runs the
calibration banks (models/research/banks.py ``CALIBRATION``; never the six reported ones). A
candidate is kept only if it is at least as good as the reference (the first, the previous default)
on the mean *and* the worst bank of every figure at once: a chart that buys recall with false
changes is a different trade, not a better detector.

    segstream evaluate --detectors --out docs   # docs/detectors.md, docs/detectors.json; ~6 min
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from segstream.config import Settings

# (name, settings) -- the reference first. 0.8.2 chose the CUSUM chart and 0.8.3 kept it against
# EWMA and other CUSUM settings on these banks (that report is in git history, docs/detectors.md at
# 87a2e80); 0.8.4 compares where the shadow state starts over, on the chosen chart.
CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "shadow restarts on a window within 12 (0.8.2-0.8.3)",
        {"change_restart": "window", "change_quiet": 12.0},
    ),
    *(
        (f"shadow restarts where the chart is within {q:g}", {"change_restart": "chart", "change_quiet": q})
        for q in (4.0, 5.0, 6.0)
    ),
)

# figure -> higher is better
FIGURES = {
    "precision": True,
    "recall_3": True,
    "recall_6": True,
    "false_changes_per_stable_window": False,
    "label_accuracy_stable_end": True,
    "label_accuracy_changed_end": True,
}


def run_candidate(over: dict[str, Any], customers: int | None = None) -> dict[str, dict[str, float]]:
    """Per calibration bank, the figures of one candidate with its own fitted confidence."""
    from segstream.models.artefact import ModelArtefact
    from segstream.models.research.banks import CALIBRATION, run
    from segstream.models.training.confidence import calibrate

    settings = Settings().model_copy(update=over)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "artefact.pt"
        calibrate(ModelArtefact.load(settings.model_path), settings, customers, log=lambda _: None).save(path)
        mine = settings.model_copy(update={"model_path": path})
        out = {}
        for bank in CALIBRATION:
            summary = run(bank, mine, customers).summary
            out[bank.name] = {k: summary[k] for k in FIGURES}
        return out


def summarise(per_bank: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per figure, the mean over banks and the worst bank's value."""
    out = {}
    for key, higher in FIGURES.items():
        v = np.array([b[key] for b in per_bank.values()], np.float64)
        out[key] = {"mean": float(v.mean()), "worst": float(v.min() if higher else v.max())}
    return out


def at_least_as_good(mine: dict[str, dict[str, float]], ref: dict[str, dict[str, float]]) -> bool:
    return all(
        (mine[k][s] >= ref[k][s]) if higher else (mine[k][s] <= ref[k][s])
        for k, higher in FIGURES.items()
        for s in ("mean", "worst")
    )


def compare(customers: int | None = None, workers: int = 2, log=print) -> dict[str, Any]:
    """Every candidate, in ``workers`` processes (each one torch thread; spawned, not forked)."""
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [(name, over, pool.submit(run_candidate, over, customers)) for name, over in CANDIDATES]
        rows = []
        for name, over, f in futures:
            per_bank = f.result()
            rows.append({"candidate": name, "settings": over, "banks": per_bank, "summary": summarise(per_bank)})
            log(f"{name}: done")
    ref = rows[0]["summary"]
    for r in rows[1:]:
        r["at_least_as_good_as_reference"] = at_least_as_good(r["summary"], ref)
    return {"reference": rows[0]["candidate"], "rows": rows}


def to_markdown(res: dict[str, Any]) -> str:
    head = ["candidate", *(f"{k} (mean / worst)" for k in FIGURES), "kept?"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in res["rows"]:
        s = r["summary"]
        cells = [r["candidate"]]
        for k in FIGURES:
            pct = k.startswith("false")
            fmt = (lambda v: f"{v:.3%}") if pct else (lambda v: f"{v:.3f}")
            cells.append(f"{fmt(s[k]['mean'])} / {fmt(s[k]['worst'])}")
        kept = r.get("at_least_as_good_as_reference")
        cells.append("reference" if kept is None else ("at least as good on every figure" if kept else "no"))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"
