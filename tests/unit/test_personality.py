import numpy as np

from segstream.core.personality import (
    CATEGORIES,
    CATEGORY_INDEX,
    LOADINGS,
    TRAITS,
    dominant_traits,
    log_ratio_traits,
    segment_label,
    trait_scores,
)


def one_category(name: str, amount: float = 100.0) -> np.ndarray:
    v = np.zeros(len(CATEGORIES))
    v[CATEGORY_INDEX[name]] = amount
    return v


def test_table_shape_and_range():
    assert LOADINGS.shape == (len(CATEGORIES), 5)
    assert 20 <= len(CATEGORIES) <= 60
    assert np.abs(LOADINGS).max() <= 3.0
    # each trait must be readable from spending: a category that loads on it most
    assert set(np.argmax(LOADINGS, axis=1)) == set(range(5))


def test_scores_depend_on_mix_not_amount():
    a = trait_scores(one_category("books", 10.0))
    b = trait_scores(one_category("books", 10_000.0))
    np.testing.assert_allclose(a, b)


def test_signature_categories_point_to_their_trait():
    expect = {
        "arts_culture": "openness",
        "savings": "conscientiousness",
        "bars_nightlife": "extraversion",
        "charity": "agreeableness",
        "healthcare": "neuroticism",
    }
    for cat, trait in expect.items():
        assert TRAITS[int(np.argmax(trait_scores(one_category(cat))))] == trait


def test_mixed_spend_gives_weighted_scores_and_empty_rows_stay_zero():
    spend = np.stack([one_category("books", 30) + one_category("savings", 70), np.zeros(len(CATEGORIES))])
    s = trait_scores(spend)
    np.testing.assert_allclose(
        s[0], 0.3 * LOADINGS[CATEGORY_INDEX["books"]] + 0.7 * LOADINGS[CATEGORY_INDEX["savings"]]
    )
    np.testing.assert_array_equal(s[1], 0.0)


def test_log_ratio_reading_depends_on_mix_and_finds_signature_traits():
    np.testing.assert_allclose(
        log_ratio_traits(one_category("books", 10.0)), log_ratio_traits(one_category("books", 1e4))
    )
    expect = {
        "arts_culture": "openness",
        "savings": "conscientiousness",
        "bars_nightlife": "extraversion",
        "charity": "agreeableness",
        "healthcare": "neuroticism",
    }
    for cat, trait in expect.items():
        assert TRAITS[int(np.argmax(log_ratio_traits(one_category(cat))))] == trait


def test_log_ratio_reading_finds_the_second_trait_the_weighted_sum_misses():
    """On generated customers (a log-odds mix, as the generator draws), a year of spending read
    by log-ratios names the true top two traits far more often than the share-weighted sum."""
    from segstream.producers.synthetic import GeneratorConfig, SyntheticBank

    bank = SyntheticBank(GeneratorConfig(customers=600, months=12, seed=3))
    spend, _ = bank.monthly_spend()
    truth = dominant_traits(bank.traits_at(11))

    def hits(scores):
        z = (scores - scores.mean(0)) / scores.std(0)
        return (dominant_traits(z) == truth).all(axis=1).mean()

    total = spend.sum(1)
    assert hits(log_ratio_traits(total)) > 0.85
    assert hits(log_ratio_traits(total)) > hits(trait_scores(total)) + 0.1


def test_dominant_and_label():
    order = dominant_traits(np.array([[0.1, 0.9, 0.3, 0.5, 0.0]]))
    assert order.tolist() == [[1, 3]]
    assert segment_label(order[0]) == "C>A"


def test_every_trait_pair_has_a_recommendation():
    from segstream.core.profiles import FAMILIES, recommend

    for d in TRAITS:
        for s in TRAITS:
            if d != s:
                family, why = recommend(d, s)
                assert family in FAMILIES and why
    assert recommend("conscientiousness", "openness")[0] == "wealth management"
    assert recommend("conscientiousness", "agreeableness")[0] == "savings plan"


def test_profiles_from_centroid_traits():
    from segstream.core.profiles import profiles

    (p,) = profiles(np.array([[0.1, 0.2, 1.5, 0.0, 0.9]]))
    assert p.label == "E>N" and p.family == "budgeting help" and "Sociable" in p.description
