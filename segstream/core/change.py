"""When a customer's personality changed, and when a segment change is worth announcing.

The LSTM is trained on whole histories, so its hidden state is a good, *slow*
estimate of who a customer is: it averages the past and cannot follow a life
change for a year. Two vectorised rules make the stream follow changes without
announcing noise:

* **Change statistic** (:class:`ChangeDetector`): each window's spending-evinced
  personality is compared with what the state predicted *before* seeing it. The
  residual, in units of its usual spread and with the calendar month's seasonal
  shift taken out, feeds a multivariate chart per customer whose memory is five
  numbers in its state record. Since 0.8.2 the chart is Crosier's multivariate
  CUSUM: the residuals are summed while they keep pointing one way, each window's
  sum shrunk by ``reference`` (half the shift it is quickest to see), so the sum
  falls back to zero while the spending looks like the prediction and grows from
  the change's first window once it does not. One odd month (a car, a holiday)
  moves it little; a new personality keeps pushing it the same way. On 0.8.2's six
  calibration banks it was at least as good as the EWMA chart of 0.3-0.8.1
  (``chart="ewma"``, Lowry's multivariate EWMA, kept for comparison) on every mean
  and worst-bank figure, and better on all but one: fewer false changes, sooner and
  more often right announcements; on 0.8.3's eight it is better on the means and
  worse on the sparsest bank's recall (README, "What limits it").
  Past the threshold the state restarts on the new behaviour: the paper's
  trajectories restart from the new personality. It restarts from a *shadow* state
  that has stepped through the windows since the chart last stood near zero (its
  statistic within ``quiet``: the CUSUM's own estimate of when the change began), so
  the new state has seen the change's first window too, not only the alarm's.
* **Emission policy** (:class:`EmissionPolicy`): the announced segment moves only
  (a) after a detected change, once the new state is sure of its segment (its gap
  to the second-nearest centroid at least ``settle``) or ``patience`` windows have
  passed, and only if it has *left* the announced one (nearer its new centroid by
  the relative margin ``departure``: a false alarm restarts the state, but a few
  windows of an unchanged customer land near their old segment); (b) as a
  correction, while the segment is provisional (the first ``review`` windows after
  a fresh start, a customer's first or a detected change), when another centroid
  has been nearer by ``review_margin`` for ``review_confirm`` windows in a row: a
  label read from two or three windows is wrong a quarter of the time, and the
  state that has seen more knows better; or (c) when another centroid has been
  nearer by ``margin`` for ``confirm`` windows in a row (slow drift).
  Nearest-centroid flips at a segment boundary are not announced. A customer's
  **first** segment waits past ``warmup`` until its label is ``first_confidence``
  likely right (the calibrated probability, core/confidence.py), at most until twice
  ``warmup``: a first label read from six windows of a customer who buys little is
  wrong a quarter of the time, and every later correction reaches consumers as a
  change that never happened. Every move, the first one too, also waits (at most
  until twice ``warmup`` windows since the fresh start) while the state's own two
  leading predicted traits name another micro-segment than its nearest centroid's
  label: there the centroid's label is right 31-46% of the time, where they agree
  90-97% (``agreement``, 0.8.6; README, issue 31).

Both keep their whole memory in the customer's state record, so any worker can
continue any customer, and both run on arrays for a whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .personality import log_ratio_traits


@dataclass(frozen=True)
class Calibration:
    """What the detector needs from training: the trait scale and the usual residual.

    ``season`` [12, 5] is the mean shift of evinced traits in each calendar month
    (December gifts, summer travel) on the training history: not personality.
    """

    trait_mean: np.ndarray  # [5] of raw evinced scores, as the model's targets were standardised
    trait_std: np.ndarray  # [5]
    residual_sd: np.ndarray  # [5] spread of (observed - predicted) on stable training windows
    season: np.ndarray  # [12, 5] in standardised units
    # a window read from few purchases is noisier than one read from many: the residual's
    # variance goes as (purchases / reference_events) ** -volume_exponent (0: one spread for all)
    volume_exponent: float = 0.0
    reference_events: float = 20.0

    def residual_spread(self, n_events: np.ndarray) -> np.ndarray:
        """[B, 5] the residual's usual spread for windows of ``n_events`` purchases."""
        ratio = np.clip(np.asarray(n_events, np.float64) / self.reference_events, 0.05, 20.0)
        return self.residual_sd[None, :] * (ratio ** (-self.volume_exponent / 2))[:, None]

    def observe(self, spend: np.ndarray, month_of_year: np.ndarray) -> np.ndarray:
        """Window spend [B, K] -> standardised evinced personality [B, 5], seasons removed."""
        z = (log_ratio_traits(spend) - self.trait_mean) / self.trait_std
        return z - self.season[month_of_year]


@dataclass(frozen=True)
class ChangeDetector:
    """A multivariate control chart of standardised residuals; alarms when its statistic passes
    ``threshold``. Its memory per customer is a [5] vector (the state record's ``chart``)."""

    chart: Literal["cusum", "ewma"] = "cusum"
    threshold: float = 16.0  # on the statistic: the squared norm of the CUSUM (the EWMA chart used 25)
    reference: float = 1.75  # CUSUM: shrink per window, in spreads; shifts of about twice this are seen soonest
    weight: float = 0.3  # EWMA: weight of the newest window
    clip: float = 3.0  # residuals beyond this many spreads count as this many (one-off purchases)
    # where the shadow state starts over: where the chart's own statistic is at most ``quiet``
    # ("chart", since 0.8.4), or where a window's own squared residual is ("window", 0.3-0.8.3,
    # at 12: chi-square 5 d.o.f., ~97%)
    restart: Literal["chart", "window"] = "chart"
    quiet: float = 5.0

    def update(
        self, memory: np.ndarray, residual: np.ndarray, sd: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(new memory [B, 5], statistic [B], quiet [B]) for residuals [B, 5] in trait units.

        ``quiet`` marks windows by which a change has not begun, so the shadow starts over after
        them. A CUSUM's classic change-point estimate is the last time it stood at zero: the chart
        has summed every window since, and a change's windows keep it up even when, read from a
        few purchases, each is within the noise on its own. The window rule restarted the shadow
        on such windows and so threw away a sparse customer's change (on the sparse bank, of 298
        changes detected within 8 windows, the restart began at the change for 66 and three or
        more windows after it for 158; with the chart rule for 99 and 42; README, "What limits it").
        """
        z = np.clip(residual / sd, -self.clip, self.clip)
        if self.chart == "cusum":
            # Crosier (1988): S = (S + z)(1 - k / |S + z|), or 0 once |S + z| <= k
            total = memory + z
            norm = np.linalg.norm(total, axis=1)
            new = total * np.where(norm > self.reference, 1.0 - self.reference / np.maximum(norm, 1e-12), 0.0)[:, None]
            stat = (new * new).sum(1)
        else:
            lam = self.weight
            new = (1.0 - lam) * memory + lam * z
            stat = (new * new).sum(1) * (2.0 - lam) / lam
        own = stat if self.restart == "chart" else (z * z).sum(1)
        return new.astype(np.float32), stat, own <= self.quiet


@dataclass(frozen=True)
class EmissionPolicy:
    """Which nearest-centroid moves become announced segment changes."""

    warmup: int = 6  # windows before a customer's first segment is announced
    rewarm: int = 1  # windows after a detected change before the new segment is announced
    confirm: int = 6  # windows in a row another centroid must be nearer, without a detected change
    margin: float = 0.35  # ... by this relative distance, (d_announced - d_new) / (d_announced + d_new)
    settle: float = 0.05  # after a detected change, announce at ``rewarm`` only with this confidence (gap to the
    patience: int = 2  # ... second-nearest centroid), else when it is reached or after ``patience`` windows
    departure: float = 0.2  # ... and only if the re-warmed state left the announced segment by this relative margin
    review: int = 8  # windows after a fresh start (first or detected change) in which a segment may be corrected ...
    review_confirm: int = 2  # ... once another centroid has been nearer for this many windows in a row ...
    review_margin: float = 0.15  # ... by this relative distance (0 windows: no correction but the drift rule)
    min_confidence: float = 0.0  # a change (after the first segment) waits until its label is this likely right
    first_confidence: float = 0.7  # a first segment waits until it is this likely right, or twice ``warmup`` windows
    # a move waits while the state's own two leading predicted traits name another micro-segment than
    # the nearest centroid's label, at most until twice ``warmup`` windows since the fresh start
    agreement: bool = True


@dataclass
class Decision:
    segment: np.ndarray  # [B] announced segment after this window (-1 = not yet)
    streak: np.ndarray  # [B] windows in a row the candidate has beaten the announced segment
    pending: np.ndarray  # [B] a detected change not yet re-warmed
    changed: np.ndarray  # [B] bool: the announced segment moved in this window
    detected: np.ndarray  # [B] bool: the move follows a detected change (else a confirmed drift or the first one)
    corrected: np.ndarray  # [B] bool: the move corrects a provisional segment (a review, not a drift)


def decide(
    policy: EmissionPolicy,
    announced: np.ndarray,
    nearest: np.ndarray,
    previous_nearest: np.ndarray,
    relative_margin: np.ndarray,
    streak: np.ndarray,
    pending: np.ndarray,
    n_windows: np.ndarray,
    alarm: np.ndarray,
    confidence: np.ndarray | None = None,
    probability: np.ndarray | None = None,
    agrees: np.ndarray | None = None,
) -> Decision:
    """One window of the emission policy for a batch; every input is row-aligned [B].

    ``previous_nearest`` is last window's nearest centroid: a streak counts windows
    in a row that the *same* other centroid was nearer. ``probability`` that the
    nearest centroid's label is right: a change below ``min_confidence`` is held (it
    stays pending or keeps its streak, and goes out in a later window once sure).
    ``agrees``: the state's own predicted traits name the nearest centroid's label; a move
    waits while they do not (``policy.agreement``), the first segment too.
    """
    pending = pending | alarm
    warm = n_windows >= policy.warmup
    first = (announced < 0) & warm
    if probability is not None and policy.first_confidence > 0:
        first &= (probability >= policy.first_confidence) | (n_windows >= 2 * policy.warmup)
    agreed = True
    if agrees is not None and policy.agreement:
        agreed = agrees | (n_windows >= 2 * policy.warmup)
        first &= agreed
    sure = True if confidence is None else (confidence >= policy.settle) | (n_windows >= policy.patience)
    rewarmed = pending & (n_windows >= policy.rewarm) & (announced >= 0) & sure
    review = n_windows <= policy.review
    beats = (
        (announced >= 0)
        & (nearest != announced)
        & (relative_margin > np.where(review, policy.review_margin, policy.margin))
        & ~pending
    )
    again = np.where(nearest == previous_nearest, streak.astype(np.int64) + 1, 1)
    streak = np.where(beats, np.minimum(again, 255), 0)
    drifted = beats & (streak >= np.where(review, policy.review_confirm, policy.confirm))
    departed = rewarmed & (nearest != announced) & (relative_margin >= policy.departure)
    move = first | drifted | departed
    held = np.zeros_like(move)
    if probability is not None and policy.min_confidence > 0:
        held = move & ~first & (probability < policy.min_confidence)
        move = move & ~held
    if agrees is not None and policy.agreement:
        held |= move & ~first & ~agreed
        move = move & ~held
    segment = np.where(move, nearest, announced).astype(np.int32)
    return Decision(
        segment=segment,
        streak=np.where(move, 0, streak).astype(np.uint8),
        pending=pending & ~(rewarmed & ~held),
        changed=move & (segment != announced),
        detected=move & rewarmed,
        corrected=move & drifted & review,
    )


def month_of_year(starts: np.ndarray) -> np.ndarray:
    """Calendar month (0 = January) of epoch-second window starts, for the seasonal table."""
    months = np.asarray(starts, np.float64).astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    return months % 12
