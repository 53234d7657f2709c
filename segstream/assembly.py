"""Wiring the core from settings: the one place entry points get a pipeline from."""

from __future__ import annotations

from collections.abc import Callable

from segstream.config import Settings
from segstream.core.categories import CategoryMap
from segstream.core.change import ChangeDetector, EmissionPolicy
from segstream.core.engine import SegmentEngine
from segstream.core.personality import CATEGORIES
from segstream.core.pipeline import SegmentationPipeline
from segstream.core.ports import SequenceModel, StateStore
from segstream.core.windows import WindowAggregator, WindowSpec
from segstream.core.wire import Limits


def window_spec(settings: Settings) -> WindowSpec:
    if settings.window_months > 0:
        return WindowSpec(months=settings.window_months)
    return WindowSpec(months=0, seconds=settings.window_seconds)


def window_aggregator(settings: Settings) -> WindowAggregator:
    return WindowAggregator(
        window_spec(settings), len(CATEGORIES), settings.allowed_lateness_s, quorum=settings.watermark_quorum
    )


def event_limits(settings: Settings, now: float | None = None) -> Limits:
    return Limits(
        max_bytes=settings.max_message_bytes,
        max_future_s=settings.max_future_s,
        max_amount=settings.max_amount,
        now=now,
        categories=CategoryMap.from_file(settings.category_map, settings.unmapped_categories),
    )


def load_model(settings: Settings):
    """The artefact and its engine adapter (torch is imported here, not by the core)."""
    import torch

    from segstream.models.artefact import ModelArtefact, TorchSequenceModel

    torch.set_num_threads(settings.torch_threads)
    artefact = ModelArtefact.load(settings.model_path)
    return artefact, TorchSequenceModel(artefact)


def build_pipeline(
    settings: Settings,
    make_store: Callable[[SequenceModel], StateStore] | None = None,
    isolate_except: tuple[type[BaseException], ...] | None = None,
) -> SegmentationPipeline:
    """The core pipeline; ``make_store`` builds the state store for the loaded model (in-memory if None);
    ``isolate_except`` as :class:`SegmentationPipeline` takes it."""
    artefact, model = load_model(settings)
    if make_store is None:
        from segstream.state.memory import InMemoryStateStore

        store: StateStore = InMemoryStateStore(model.hidden_size)
    else:
        store = make_store(model)
    engine = SegmentEngine(
        model,
        store,
        policy=EmissionPolicy(
            warmup=settings.warmup_windows,
            rewarm=settings.rewarm_windows,
            confirm=settings.confirm_windows,
            margin=settings.confirm_margin,
            settle=settings.settle_confidence,
            patience=settings.settle_windows,
            departure=settings.departure_margin,
            review=settings.review_windows,
            review_confirm=settings.review_confirm,
            review_margin=settings.review_margin,
            min_confidence=settings.min_confidence,
            first_confidence=settings.first_confidence,
            agreement=settings.label_agreement,
        ),
        detector=ChangeDetector(
            chart=settings.change_chart,
            reference=settings.change_reference,
            weight=settings.change_weight,
            threshold=settings.change_threshold,
            restart=settings.change_restart,
            quiet=settings.change_quiet,
            clip=settings.change_clip,
        )
        if settings.change_threshold > 0
        else None,
        initial_centroids=artefact.centroids,
        prior_weight=settings.centroid_prior_weight,
    )
    return SegmentationPipeline(engine, window_aggregator(settings), settings.batch_size, isolate_except)
