"""Issue 30: one source of defaults. The settings object is it; where the core has defaults of
its own (for tests and tools that build it by hand), they must be the settings' (0.7's change
policy defaulted to a warm-up of 4 and a confirmation of 3 in the core, 6 and 6 in settings)."""

from __future__ import annotations

import dataclasses

from segstream.assembly import event_limits
from segstream.config import Settings
from segstream.core.change import ChangeDetector, EmissionPolicy
from segstream.core.wire import Limits

# the core's field -> the setting it comes from (assembly.py builds the core with these)
POLICY = {
    "warmup": "warmup_windows",
    "rewarm": "rewarm_windows",
    "confirm": "confirm_windows",
    "margin": "confirm_margin",
    "settle": "settle_confidence",
    "patience": "settle_windows",
    "departure": "departure_margin",
    "review": "review_windows",
    "review_confirm": "review_confirm",
    "review_margin": "review_margin",
    "min_confidence": "min_confidence",
    "first_confidence": "first_confidence",
    "agreement": "label_agreement",
}
DETECTOR = {
    "chart": "change_chart",
    "reference": "change_reference",
    "weight": "change_weight",
    "threshold": "change_threshold",
    "restart": "change_restart",
    "quiet": "change_quiet",
    "clip": "change_clip",
}


def test_the_core_defaults_are_the_settings_defaults():
    s = Settings()
    for cls, names in ((EmissionPolicy, POLICY), (ChangeDetector, DETECTOR)):
        core = cls()
        assert {f: getattr(core, f) for f in names} == {f: getattr(s, k) for f, k in names.items()}, cls.__name__
    limits, built = Limits(), event_limits(s)
    for f in ("max_bytes", "max_future_s", "max_amount"):
        assert getattr(limits, f) == getattr(built, f), f


def test_every_policy_field_is_a_setting():
    """A new knob of the core must come with its setting, or this map (and the test above) says so."""
    assert set(POLICY) == {f.name for f in dataclasses.fields(EmissionPolicy)}
    assert set(DETECTOR) == {f.name for f in dataclasses.fields(ChangeDetector)}
