"""Issue 31: the six banks differ as the issue asks, and each one's frontier is measured the way
the product's recall is (its changed customers, the change window counted as the first)."""

from __future__ import annotations

from dataclasses import replace

from segstream.models.research.banks import BANKS, CALIBRATION, GOALS, frontier


def test_six_banks_span_what_the_issue_names_and_none_is_a_calibration_bank():
    gens = [b.generator for b in BANKS]
    assert len(BANKS) >= 6 and all(g.customers >= 3000 for g in gens)
    assert min(g.change_share for g in gens) <= 0.05 and max(g.change_share for g in gens) >= 0.3
    assert min(g.tx_per_month for g in gens) <= 5 and max(g.tx_per_month for g in gens) >= 40
    assert min(g.months for g in gens) <= 24 and max(g.months for g in gens) >= 36
    assert {g.seasonal for g in gens} == {True, False} and any(g.drift_share > 0 for g in gens)
    assert len({g.change_period for g in gens}) >= 3 and len({g.missing_month_rate for g in gens}) >= 2
    assert not {g.seed for g in gens} & {b.generator.seed for b in CALIBRATION}


def test_the_frontier_grows_with_the_windows_read_after_the_change():
    cfg = replace(BANKS[0].generator, customers=800)
    f = frontier(cfg, ks=(1, 6))
    assert 0.2 < f[1] < f[6] <= 1.0


def test_a_goal_may_depend_on_the_banks_volume():
    goal, higher = GOALS["label_accuracy_changed_end"]
    assert higher and goal({"purchases_per_month": 20}) == 0.85 and goal({"purchases_per_month": 6}) == 0.80


def test_a_detector_is_kept_only_if_no_figure_is_worse_on_the_mean_or_the_worst_bank():
    """models/research/detectors.py: a chart that buys recall with false changes is another trade,
    not a better detector."""
    from segstream.models.research.detectors import FIGURES, at_least_as_good, summarise

    base = {k: 0.5 for k in FIGURES} | {"false_changes_per_stable_window": 0.002}
    ref = summarise({"a": base, "b": base | {"recall_3": 0.2}})
    better = summarise({"a": base | {"recall_3": 0.6}, "b": base | {"recall_3": 0.2}})
    assert at_least_as_good(better, ref)
    trade = summarise({"a": base | {"recall_3": 0.6, "false_changes_per_stable_window": 0.003}, "b": base})
    assert not at_least_as_good(trade, ref)
    worse_worst = summarise({"a": base | {"recall_3": 0.9}, "b": base | {"recall_3": 0.1}})
    assert better["recall_3"]["mean"] < worse_worst["recall_3"]["mean"] and not at_least_as_good(worse_worst, ref)
