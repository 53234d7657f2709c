import numpy as np
from sklearn.metrics import adjusted_rand_score

from segstream.config import Settings
from segstream.demo import run_demo
from segstream.producers.synthetic import GeneratorConfig, SyntheticBank


def test_demo_segments_beat_a_shuffled_baseline():
    out = run_demo(customers=400, months=12, seed=11, settings=Settings(), progress=False)
    assert out["events"] > 0 and out["windows_closed"] == out["state_updates"] > 0
    assert out["n_segments"] > 5
    # baseline: the same segment sizes, assigned to customers at random
    truth = SyntheticBank(GeneratorConfig(customers=400, months=1, seed=11)).truth["micro_segment"]
    rng = np.random.default_rng(0)
    sizes = rng.integers(0, 20, len(truth))
    baseline = max(adjusted_rand_score(truth, rng.permutation(sizes)) for _ in range(20))
    assert out["ari_vs_truth"] > baseline + 0.3, (out["ari_vs_truth"], baseline)
    assert 0.0 <= out["flip_rate"] < 0.5


def test_demo_reports_change_tracking_against_the_truth_per_window():
    out = run_demo(
        customers=600, months=16, seed=4, settings=Settings(), progress=False, change_share=0.3, seasonal=True
    )
    assert out["true_changes"] > 100
    assert out["changes_detected"] > 0.5 * out["true_changes"]
    # a meaningful stream: most announced changes are real, most real ones are announced
    assert out["change_precision_lenient"] > 0.3 and out["change_recall_6_lenient"] > 0.6
    assert out["precision"] > 0.3 and out["recall_6"] > 0.4  # the label-exact figures a consumer sees
    assert out["false_changes_per_stable_window"] < 0.03
    assert out["label_accuracy_changed_end"] > 0.4


def test_what_the_states_know_is_what_an_every_flip_policy_announces():
    """The state figures read each state's nearest centroid; with every flip announced (no
    confirmation, no review, no detector to hold a move), the announced segments are exactly those,
    and the strict default policy announces less than its states know on the same bank."""
    every_flip = Settings(
        confirm_windows=1,
        confirm_margin=0.0,
        review_windows=0,
        change_threshold=0.0,
        first_confidence=0.0,
        label_agreement=False,
    )
    loose = run_demo(customers=400, months=12, seed=11, settings=every_flip, progress=False)
    assert loose["ari_state_vs_truth"] == loose["ari_vs_truth"] > 0.3
    assert loose["label_accuracy_state_end"] == loose["label_accuracy_stable_end"]
    strict = run_demo(customers=400, months=12, seed=11, settings=Settings(), progress=False)
    assert strict["ari_state_vs_truth"] > strict["ari_vs_truth"]
