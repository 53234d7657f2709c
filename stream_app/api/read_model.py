"""What the API reads, apart from what the worker writes: segments, customers, windows and
the explorer's map, computed from the stored centroids and states.

The 2-D map is the centroids' two principal axes, recomputed per request: it is stable while
the centroids move slowly, and no worker has to keep a projection in step with them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from segstream.core.confidence import announced_margin, state_features
from segstream.core.personality import TRAITS
from segstream.core.profiles import profiles
from segstream.core.windows import WindowSpec
from segstream.errors import NotFound, StoreCorrupt
from segstream.models.artefact import ModelArtefact, TorchSequenceModel
from segstream.state.layout import StateLayout
from segstream.state.redis_client import UNAVAILABLE
from segstream.state.redis_store import RedisStateStore

from .schemas import Customer, Flow, MapPoint, Segment, TrajectoryPoint, WindowSummary


class ReadModel:
    def __init__(
        self,
        store: RedisStateStore,
        artefact: ModelArtefact,
        spec: WindowSpec,
        namespace: str,
        layout: StateLayout | None = None,
    ):
        self.store = store
        # the layout the API reads under: one the workers do not write would answer "unknown" for everyone
        self.layout = layout
        self.artefact = artefact
        self.model = TorchSequenceModel(artefact)
        self.spec = spec
        self.namespace = namespace
        self.rules = artefact.trained_on.get("segment_rules", {})

    def started(self) -> bool:
        """A worker has written this deployment's centroids: before that there are no segments."""
        return bool(self.store.r.exists(self.store.centroid_key))

    def not_ready(self) -> str | None:
        """Why the API cannot serve yet, or None: Redis answers and holds finite centroids."""
        try:
            self.store.r.ping()
        except UNAVAILABLE as err:
            return f"Redis unavailable: {err}"
        if not self.started():
            return "no worker has written centroids for this namespace and model yet"
        try:
            self.store.centroid_stats()
        except StoreCorrupt as err:
            return str(err)
        recorded = None if self.layout is None else self.layout.recorded()
        if recorded is not None and recorded != self.layout.layout:
            return (
                f"the workers keep this deployment's states under {recorded!r}, this API reads {self.layout.layout!r}: "
                "give it their model artefact, SEGSTREAM_REDIS_STATE_BUCKETS and window length"
            )
        return None

    def month(self, idx: int) -> str:
        return datetime.fromtimestamp(self.spec.start(int(idx)), tz=UTC).date().isoformat()

    def _basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centroids, their mean and the map's two axes. Callers check started() first."""
        c = self.store.centroid_stats().centroids  # StoreCorrupt if not finite numbers
        mean = c.mean(0)
        _, _, vt = np.linalg.svd(c - mean, full_matrices=False)
        return c, mean, vt[:2]

    def segments(self) -> list[Segment]:
        if not self.started():
            return []  # before any worker has run: none yet
        c, mean, axes = self._basis()
        sizes = self.store.segment_sizes()
        pos = (c - mean) @ axes.T
        return [
            Segment(
                segment=p.segment,
                label=p.label,
                size=sizes.get(p.segment, 0),
                description=p.description,
                recommendation=p.family,
                why=p.why,
                traits=p.traits,
                centroid=c[p.segment].tolist(),
                position=pos[p.segment].tolist(),
                rules=self.rules.get(str(p.segment), []),
                rules_accuracy=self.artefact.trained_on.get("segment_rules_accuracy"),
            )
            for p in profiles(self.model.traits_of(c))
        ]

    def segment(self, segment: int) -> Segment:
        if not self.started():
            raise NotFound(
                f"no segments yet: no worker has written centroids for namespace "
                f"{self.namespace!r} and model {self.artefact.version}"
            )
        segs = self.segments()
        if not 0 <= segment < len(segs):
            raise NotFound(f"no segment {segment}: segments are 0..{len(segs) - 1}")
        return segs[segment]

    def windows(self, last: int) -> list[WindowSummary]:
        """Segment sizes and flows of the newest ``last`` windows, oldest first."""
        flows = self.store.window_flows()
        out = []
        for w in sorted(flows)[-last:]:
            sizes: dict[int, int] = {}
            for (_, after), n in flows[w].items():
                sizes[after] = sizes.get(after, 0) + n
            out.append(
                WindowSummary(
                    window_start=self.month(w),
                    sizes=dict(sorted(sizes.items())),
                    flows=[Flow(before=b, after=a, customers=n) for (b, a), n in sorted(flows[w].items())],
                )
            )
        return out

    def customer_ids(self, prefix: str, limit: int) -> list[str]:
        return sorted(self.store.customer_ids(limit, prefix)) if self.started() else []

    def customer(self, customer_id: str) -> Customer:
        if not self.started():
            raise NotFound(f"unknown customer {customer_id!r}: no worker has run for this namespace yet")
        state, _ = self.store.load([customer_id])
        if state.last_window[0] < 0:
            raise NotFound(f"unknown customer {customer_id!r}: no window of theirs has been processed")
        c, mean, axes = self._basis()
        traj = self.store.trajectory(customer_id)
        prof = profiles(self.model.traits_of(c))
        seg = int(state.segment[0])
        confidence = self._confidence(c, state) if seg >= 0 else None
        history, prev = [], None
        for w, s in zip(traj.last_window.tolist(), traj.segment.tolist()):
            if s != prev:
                history.append({"window_start": self.month(w), "segment": s})
                prev = s
        return Customer(
            customer_id=customer_id,
            model_version=self.artefact.version,
            segment=seg,
            segment_label=prof[seg].label if seg >= 0 else None,
            confidence=confidence,
            recommendation=prof[seg].family if seg >= 0 else None,
            traits=dict(zip(TRAITS, map(float, self.model.traits_of(state.h)[0]))),
            windows_applied=int(state.n_windows[0]),
            last_window_start=self.month(state.last_window[0]),
            trajectory=self._trajectory(traj, mean, axes, prof),
            segment_history=history,
        )

    def _confidence(self, centroids: np.ndarray, state) -> float | None:
        cm = self.artefact.current_confidence
        if cm is None:
            return None
        x = state_features(
            announced_margin(centroids, state.h, state.segment), state.n_windows, state.pending.astype(bool)
        )
        return round(float(cm.score(x)[0]), 3)

    def _trajectory(self, traj, mean, axes, prof) -> list[TrajectoryPoint]:
        """Each stored window's state, with its traits; a segment change names the traits that moved most."""
        traits = self.model.traits_of(traj.h) if len(traj) else np.zeros((0, len(TRAITS)))
        points, prev = [], None
        for i, (w, s, h) in enumerate(zip(traj.last_window.tolist(), traj.segment.tolist(), traj.h)):
            change = None
            if s >= 0 and s != prev and i > 0:
                shift = traits[i] - traits[i - 1]
                top = np.argsort(-np.abs(shift))[:2]
                moved = ", ".join(f"{TRAITS[t]} {shift[t]:+.2f}" for t in top)
                was = f"{prev} {prof[prev].label}" if prev is not None and prev >= 0 else "no segment"
                change = f"{was} → {s} {prof[s].label}: {moved}"
            points.append(
                TrajectoryPoint(
                    window_start=self.month(w),
                    segment=int(s),
                    position=((h - mean) @ axes.T).tolist(),
                    hidden=h.tolist(),
                    traits=dict(zip(TRAITS, map(float, traits[i]))),
                    change=change,
                )
            )
            prev = s
        return points

    def customer_map(self, limit: int) -> list[MapPoint]:
        ids = self.store.customer_ids(limit)
        if not ids or not self.started():
            return []
        state, _ = self.store.load(ids)
        _, mean, axes = self._basis()
        xy = (state.h - mean) @ axes.T
        return [
            MapPoint(customer_id=i, segment=int(s), x=float(p[0]), y=float(p[1]))
            for i, s, p in zip(ids, state.segment, xy)
        ]
