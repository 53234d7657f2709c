"""What a segment means to a banker: its traits in words and a product family.

The rule table follows the seed studies' practice of mapping segments to
savings, credit, wealth-management and budgeting offers; which trait maps to
which family is our judgement, written down here so it can be reviewed and
changed in one place. Rules match on (dominant, second) trait; the first match wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .personality import TRAITS, dominant_traits, segment_label

FAMILIES = ("savings plan", "credit/loan product", "wealth management", "budgeting help")

# (dominant, second or None) -> (family, why)
RULES: tuple[tuple[str, str | None, str, str], ...] = (
    (
        "neuroticism",
        None,
        "budgeting help",
        "anxious spending and insurance-heavy mixes profit from a budget and buffers",
    ),
    (
        "conscientiousness",
        "openness",
        "wealth management",
        "disciplined savers open to new ideas: diversified investing",
    ),
    ("conscientiousness", None, "savings plan", "planners who already save: a goal-based savings plan"),
    ("openness", "conscientiousness", "wealth management", "curious and careful: long-horizon investing"),
    ("openness", None, "credit/loan product", "travel and culture spenders: a flexible credit line for experiences"),
    (
        "extraversion",
        "neuroticism",
        "budgeting help",
        "social, impulsive spending with worry: spending caps and alerts",
    ),
    ("extraversion", None, "credit/loan product", "social spenders: a rewards card with sensible limits"),
    ("agreeableness", "conscientiousness", "savings plan", "family- and gift-oriented planners: family savings"),
    ("agreeableness", None, "savings plan", "generous givers: automatic saving before giving"),
)

_ADJ = {
    "openness": "curious",
    "conscientiousness": "disciplined",
    "extraversion": "sociable",
    "agreeableness": "generous",
    "neuroticism": "cautious",
}


@dataclass(frozen=True)
class SegmentProfile:
    segment: int
    label: str  # e.g. "O>E"
    dominant: str
    second: str
    traits: dict[str, float]
    family: str
    why: str

    @property
    def description(self) -> str:
        return (
            f"{_ADJ[self.dominant].capitalize()} and {_ADJ[self.second]}: {self.dominant} first, {self.second} second."
        )


def recommend(dominant: str, second: str) -> tuple[str, str]:
    for d, s, family, why in RULES:
        if d == dominant and (s is None or s == second):
            return family, why
    raise LookupError(f"no rule for {dominant}>{second}")


def profiles(trait_matrix: np.ndarray) -> list[SegmentProfile]:
    """One profile per centroid from its predicted Big-Five scores [k, 5]."""
    traits = np.asarray(trait_matrix)
    out = []
    for j, (t, order) in enumerate(zip(traits, dominant_traits(traits, k=2))):
        d, s = TRAITS[order[0]], TRAITS[order[1]]
        family, why = recommend(d, s)
        out.append(SegmentProfile(j, segment_label(order), d, s, dict(zip(TRAITS, map(float, t))), family, why))
    return out


def segment_labels(trait_matrix: np.ndarray) -> np.ndarray:
    """[k] each centroid's label ("O>E") from its predicted traits, to index by segment number."""
    return np.array([p.label for p in profiles(trait_matrix)], dtype=object)
