"""One settings object for every entry point.

Every field can be overridden by an environment variable ``SEGSTREAM_<FIELD>``
(e.g. ``SEGSTREAM_KAFKA_BOOTSTRAP=broker:9092``) so the same code runs in the
embedded demo, in tests and under docker-compose without code changes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEGSTREAM_", extra="ignore")

    # --- transport -------------------------------------------------------
    kafka_bootstrap: str = "localhost:9092"
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    kafka_sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = Field(default=None, repr=False)
    kafka_ssl_cafile: str | None = None
    redis_url: str = Field(default="redis://localhost:6379/0", repr=False)
    # Credentials apart from the URL, taken as they are (any character): they override the URL's
    redis_username: str | None = None
    redis_password: str | None = Field(default=None, repr=False)
    # A Redis Cluster at redis_url (any one node): customers' keys are spread over this many
    # hash-tagged slot groups, each committed atomically on its own (state/redis_store.py)
    redis_cluster: bool = False
    redis_cluster_groups: int = 16
    # Customers' records live as fields of this many Redis hashes (state/redis_store.py): ~185 B
    # a customer instead of ~280 B as one key each, on a stock Redis. Fewer hashes mean fewer
    # commands per batch. Part of the namespace: changing it starts from fresh states.
    redis_state_buckets: int = 256
    topic_transactions: str = "transactions"
    topic_changes: str = "segment-changes"
    topic_dlq: str = "transactions-dlq"
    topic_partitions: int = 4
    # Topics are created (before any subscription) with these; at start the worker compares
    # existing topics with them and says what differs. The input must be kept long enough to
    # rebuild every state by a replay (the model needs a year of monthly windows): 400 days.
    topic_replication_factor: int = 1  # 3 on a production cluster
    topic_min_insync_replicas: int = 1  # 2 with a replication factor of 3
    transactions_retention_ms: int = 400 * 86_400_000
    # Segment changes are keyed by customer; an erased customer's changes are gone from the
    # topic once this retention has passed (docs/security.md), the tombstone at once for compacted copies.
    changes_retention_ms: int = 30 * 86_400_000
    dlq_retention_ms: int = 30 * 86_400_000
    consumer_group: str = "segstream"
    # A worker silent this long is dropped from the group and its partitions move; one
    # that wakes up after that is fenced (state/fencing.py). Heartbeats every third of it.
    kafka_session_timeout_ms: int = 10_000
    # How soon a worker sees that the transactions topic gained partitions (it then halts every
    # partition until `segstream recover` has moved the open windows): the producers' own
    # metadata refresh (kafka clients: 5 minutes) sends customers to new partitions meanwhile.
    kafka_metadata_max_age_ms: int = 60_000
    # `segstream recover` moves open windows to customers' new partitions only this long after a
    # worker first saw the new count: producers still send by the old count until their metadata
    # refreshes (metadata.max.age.ms, 5 minutes in Kafka's clients), and such records are moved too.
    repartition_settle_s: float = 300.0
    # Prefix of every Redis key this deployment writes (states, centroids, checkpoints).
    # Empty: the consumer group, so two deployments (another topic or group) sharing
    # one Redis never read each other's state or checkpoints.
    namespace: str = ""
    # The broker's offsets.retention.minutes (7 days by default): a partition checkpointed more
    # recently than this whose group offsets are gone means the broker lost its data
    # (stream_app/positions.py); an idle group's offsets expiring after it is not an alarm.
    kafka_offsets_retention_s: float = 7 * 86400

    # --- windowing -------------------------------------------------------
    window_months: int = 1  # calendar months per tumbling window (0 = use window_seconds)
    window_seconds: int = 0  # fixed-length windows when window_months == 0
    allowed_lateness_s: int = 3 * 86400
    # The watermark trails the latest event time that this many distinct customers of a
    # partition reached: fewer customers with wrong clocks (a mis-dated row, a terminal
    # stamping days ahead) cannot move it, however many events they send.
    watermark_quorum: int = 3
    # A partition quiet this long (no records) closes its windows once the wall clock
    # passes their end plus the lateness, as if events had said so: the last month of a
    # backfill, or of a customer base that stopped paying by card, closes without newer
    # events. 0 keeps windows open until events move the clock.
    idle_close_s: float = 120.0
    # ... but only on a live partition: one whose newest event is at most this far behind the
    # wall clock. A backfill (or a paused one) is never closed by the wall clock, only by its
    # own events; more than the lateness, so a live month closes though its last days were quiet.
    idle_close_max_lag_s: float = 7 * 86400
    max_future_s: int = 7 * 86400  # events further ahead of wall-clock time are rejected
    max_message_bytes: int = 16 * 1024
    max_amount: float = 1_000_000.0
    # The bank's own category names -> ours (CSV "name,category" or YAML); events may also
    # carry an ISO 18245 "mcc" instead of a category (segstream/core/categories.py).
    category_map: Path | None = None
    # Purchases with no personality meaning (cash, taxes, utilities): "other" accepts and
    # counts them (outcome other_category) outside the spending mix; "dlq" refuses them.
    unmapped_categories: Literal["other", "dlq"] = "other"

    # --- engine ----------------------------------------------------------
    batch_size: int = 8192  # records per poll at most: round trips to Redis and the broker are per batch
    batch_timeout_s: float = 0.5
    # Batch ingest: write window checkpoints and commit offsets at most this often
    # (0: after every batch). Longer means fewer writes per event and a longer replay
    # after a crash; what is counted and emitted does not change.
    checkpoint_interval_s: float = 1.0
    # Memory bounds of the core (its open windows and their dedup keys): at either, the worker
    # stops fetching (health 503, segstream_memory_bound 1, one log line) until closing windows
    # brings it back under; it never grows until the kernel kills it. About 820 B per open
    # customer window, and one batch beyond the bound in flight (BENCHMARKS.md, memory bound); add
    # partitions and workers before a month end reaches it.
    max_open_windows: int = 4_000_000
    max_core_memory_mb: int = 3072
    # Run the core (decoding, windows, engine) in a process of its own beside the
    # worker's event loop, so the two use two cores instead of sharing one
    # interpreter lock; False runs it in a thread of the worker.
    core_process: bool = True
    # --- change detection and emission (core/change.py; docs/evaluation.md has the trade-off)
    warmup_windows: int = 6  # windows before a customer's first segment is announced
    # the change statistic's chart (core/change.py): "cusum" (0.8.2) or the "ewma" of 0.3-0.8.1,
    # whose threshold was 25; a new chart or threshold wants `segstream calibrate` after it
    change_chart: Literal["cusum", "ewma"] = "cusum"
    change_threshold: float = 16.0  # the chart's statistic that resets the state; 0: off
    change_reference: float = 1.75  # CUSUM: shrink per window in spreads (shifts of ~twice this are seen soonest)
    change_weight: float = 0.3  # EWMA: weight of the newest window
    # the shadow state (a detected change restarts from it) starts over where the chart's statistic
    # is within `change_quiet` ("chart", 0.8.4), or where a window's own squared residual is
    # ("window", 0.3-0.8.3, at 12)
    change_restart: Literal["chart", "window"] = "chart"
    change_quiet: float = 5.0
    change_clip: float = 3.0  # residuals beyond this many spreads count as this many (one-off purchases)
    rewarm_windows: int = 1  # windows after a detected change before its new segment is announced
    confirm_windows: int = 6  # without a detected change: windows in a row another segment must be nearer ...
    confirm_margin: float = 0.35  # ... by this relative distance, before the segment moves
    settle_confidence: float = 0.05  # after a detected change: announce early only this sure of the new segment ...
    settle_windows: int = 2  # ... else this many windows after it
    departure_margin: float = 0.2  # ... and only if the new state is this much nearer its segment than the old one
    review_windows: int = 8  # for this many windows after a fresh start (first or detected change) ...
    review_confirm: int = 2  # ... a segment is corrected once another is nearer this many windows in a row ...
    review_margin: float = 0.15  # ... by this relative distance
    # a change after the first segment is announced only once its label's probability of being right
    # (the events' confidence, calibrated: docs/tracking.md) reaches this; 0 announces every change
    min_confidence: float = 0.0
    # a customer's first segment waits past the warm-up until its label is this likely right (at most
    # twice the warm-up): chosen on the calibration banks, never the six reported (README, issue 31)
    first_confidence: float = 0.7
    # a segment moves (or is first announced) only once the state's own two leading predicted traits
    # name the same micro-segment as its nearest centroid, or twice the warm-up after a fresh start:
    # where they differ the centroid's label is right 31-46% of the time (README, issue 31)
    label_agreement: bool = True
    model_path: Path | None = None  # None: the artefact shipped in models/artefacts
    # torch's threads for the LSTM step: one batch is a small matrix product, and extra
    # threads only take cores from Redis and the event loop (BENCHMARKS.md, month end)
    torch_threads: int = 1
    centroid_prior_weight: float = 50.0  # pseudo-count of the shipped centroids
    history_windows: int = 12  # hidden-state trajectory kept per customer in Redis (0: none)

    # --- operations ------------------------------------------------------
    web_port: int = 6066  # worker HTTP: /metrics, /healthz
    web_host: str = "127.0.0.1"  # where the worker's HTTP listens; 0.0.0.0 in a container (docker-compose)

    # --- security (docs/security.md) ---------------------------------------
    # API keys, one per line: "name scope sha256:<hex>" (segstream api-key writes them);
    # none configured: `segstream api` makes a development key for the run and prints it once.
    api_keys_file: Path | None = None
    api_keys: str = Field(default="", repr=False)  # the same lines, ";"-separated
    api_request_timeout_s: float = 10.0  # a request (headers and body) not received whole by then: closed
    # Customers with no window in this many windows are erased by `segstream forget --inactive`
    # (run it from cron); 0: no retention limit.
    retention_windows: int = 0
    # Erased customers are recorded once for the whole deployment, under this prefix: every
    # namespace, consumer group and model version on this Redis withholds their events.
    erasure_namespace: str = "segstream"
    # Every erasure and new consent also goes, as a keyed digest, to this compacted topic that is
    # never deleted: a Redis lost or restored from an older snapshot gets them back from it before
    # any event is replayed (`segstream recover`, and each worker at start). Empty:
    # "<erasure_namespace>-erasures".
    topic_erasures: str = ""
    data_dir: Path = Path("var/worker")  # Faust's local data directory
    log_level: str = "INFO"
    # Allocations between young-generation garbage collections (Python's default: 700;
    # 0 keeps it). Each batch allocates tens of thousands of short-lived objects (Kafka
    # records, decoded events); at 700 the collector runs dozens of times per batch and
    # promotes them into older generations that full collections then walk.
    gc_threshold: int = 100_000

    @property
    def redis_prefix(self) -> str:
        return self.namespace or self.consumer_group

    @property
    def erasures_topic(self) -> str:
        return self.topic_erasures or f"{self.erasure_namespace}-erasures"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
