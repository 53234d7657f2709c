import numpy as np

from producers.synthetic import GeneratorConfig, SyntheticBank
from segstream.core.events import validate_event
from segstream.core.personality import TRAITS, trait_scores


def small(seed=3, **kw):
    return SyntheticBank(GeneratorConfig(customers=200, months=6, seed=seed, **kw))


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b, c = small(), small(), small(seed=4)
    assert list(a.events()) == list(b.events())
    assert a.truth.equals(b.truth)
    assert not np.array_equal(a.traits, c.traits)
    # months can be generated in any order and still agree
    np.testing.assert_array_equal(a.month(4).amount, small().month(4).amount)


def test_truth_matches_traits_and_covers_micro_segments():
    bank = SyntheticBank(GeneratorConfig(customers=2000, months=1, seed=0))
    t = bank.truth
    order = np.argsort(-bank.traits, axis=1)
    assert (t["dominant"] == [TRAITS[i] for i in order[:, 0]]).all()
    assert t["micro_segment"].nunique() == 20 and t["coarse_segment"].nunique() == 5


def test_events_are_valid_time_ordered_and_carry_noise():
    bank = small(missing_month_rate=0.2, life_event_rate=0.2)
    events = list(bank.events())
    stamps = [validate_event(e, now=float("inf")).epoch for e in events]
    assert stamps == sorted(stamps)
    spend, active = bank.monthly_spend()
    assert 0.6 < active.mean() < 0.95  # missing months
    assert spend.sum(2).max() > 1.0  # a one-off purchase larger than a month's income


def test_spending_reveals_personality():
    bank = SyntheticBank(GeneratorConfig(customers=1000, months=12, seed=1))
    spend, _ = bank.monthly_spend()
    evinced = trait_scores(spend.sum(1))
    z = (evinced - evinced.mean(0)) / evinced.std(0)
    agree = (z.argmax(1) == bank.traits.argmax(1)).mean()
    assert agree > 0.5  # chance is 0.2
