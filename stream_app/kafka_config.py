"""Kafka connection options from settings, for kafka-python and for Faust, and topic setup."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from segstream.config import Settings
from segstream.errors import ConfigError

log = logging.getLogger(__name__)


def kafka_python_options(s: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "bootstrap_servers": s.kafka_bootstrap.split(","),
        "security_protocol": s.kafka_security_protocol,
    }
    if s.kafka_sasl_mechanism:
        opts.update(
            sasl_mechanism=s.kafka_sasl_mechanism,
            sasl_plain_username=s.kafka_sasl_username,
            sasl_plain_password=s.kafka_sasl_password,
        )
    if s.kafka_ssl_cafile:
        opts["ssl_cafile"] = s.kafka_ssl_cafile
    return opts


def aiokafka_options(s: Settings) -> dict[str, Any]:
    """The same options for aiokafka, which takes an SSL context instead of a CA file."""
    opts = kafka_python_options(s)
    cafile = opts.pop("ssl_cafile", None)
    if "SSL" in s.kafka_security_protocol:
        from aiokafka.helpers import create_ssl_context

        opts["ssl_context"] = create_ssl_context(cafile=cafile)
    return opts


def faust_credentials(s: Settings):
    import faust

    ssl_context = None
    if "SSL" in s.kafka_security_protocol:
        import ssl

        ssl_context = ssl.create_default_context(cafile=s.kafka_ssl_cafile)
    if s.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=s.kafka_sasl_username,
            password=s.kafka_sasl_password,
            mechanism=s.kafka_sasl_mechanism,
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context) if ssl_context else None


def verify(s: Settings, timeout_s: float = 10.0) -> None:
    """Fail at start-up with one clear line when no bootstrap server answers, or when the
    broker refuses the credentials or the certificate. Kafka clients treat all three as a
    broken connection and retry (kafka-python gives up after 30 s with a long traceback and
    "Unable to bootstrap", aiokafka never), which hides the cause. One handshake per
    bootstrap server, until one succeeds."""
    import ssl

    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

    opts = aiokafka_options(s)
    sasl = {k: opts[k] for k in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password") if k in opts}

    async def handshake(host: str, port: int) -> None:
        conn = await create_conn(
            host,
            port,
            security_protocol=s.kafka_security_protocol,
            ssl_context=opts.get("ssl_context"),
            request_timeout_ms=int(timeout_s * 1000),
            **sasl,
        )
        conn.close()

    failures = []
    for server in s.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            asyncio.run(asyncio.wait_for(handshake(host, int(port)), timeout_s))
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as err:
            raise ConfigError(
                f"Kafka at {server} refused user {s.kafka_sasl_username!r} "
                f"({s.kafka_sasl_mechanism}); check SEGSTREAM_KAFKA_SASL_USERNAME/_PASSWORD: {err}"
            ) from None
        except ssl.SSLCertVerificationError as err:
            raise ConfigError(
                f"Kafka at {server}: its TLS certificate is not trusted "
                f"(SEGSTREAM_KAFKA_SSL_CAFILE={s.kafka_ssl_cafile}): {err.verify_message}"
            ) from None
        except (TimeoutError, OSError, KafkaError, ValueError) as err:
            failures.append(
                f"{server} ({type(err).__name__}: {err})" if str(err) else f"{server} ({type(err).__name__})"
            )
            continue
        return
    raise ConfigError(
        f"Kafka is not reachable at {', '.join(failures)}: is the broker running, and is "
        f"SEGSTREAM_KAFKA_BOOTSTRAP ({s.kafka_bootstrap}) right?"
    )


def topic_specs(s: Settings) -> dict[str, tuple[int, int, dict[str, str]]]:
    """Each topic's partitions, replication factor and configs, from settings.

    The transactions topic stamps records with the broker's append time: an event's own
    time is in its payload, and the record's stamp is what the end-to-end latency
    (``segstream_end_to_end_seconds``) counts from; with the producer's create time it
    would also count how long the producer held the record."""
    common = {"min.insync.replicas": str(s.topic_min_insync_replicas)}
    return {
        s.topic_transactions: (
            s.topic_partitions,
            s.topic_replication_factor,
            {
                **common,
                "message.timestamp.type": "LogAppendTime",
                "retention.ms": str(s.transactions_retention_ms),
            },
        ),
        s.topic_changes: (
            s.topic_partitions,
            s.topic_replication_factor,
            {**common, "retention.ms": str(s.changes_retention_ms)},
        ),
        s.topic_dlq: (
            s.topic_partitions,
            s.topic_replication_factor,
            {**common, "retention.ms": str(s.dlq_retention_ms)},
        ),
        # the latest record per digest (an erasure, or a tombstone for new consent) is kept for ever
        s.erasures_topic: (
            1,
            s.topic_replication_factor,
            {**common, "cleanup.policy": "compact", "retention.ms": "-1"},
        ),
    }


def ensure_topics(s: Settings) -> list[str]:
    """Create the topics if missing (idempotent; several processes may race), then say how
    existing ones differ from the settings (one warning each; returned for tests and tools).
    Raises :class:`ConfigError` for a difference that loses records silently (:func:`hazards`)."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    specs = topic_specs(s)
    admin = KafkaAdminClient(**kafka_python_options(s), client_id="segstream-admin")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(t, p, rf, topic_configs=cfg) for t, (p, rf, cfg) in specs.items() if t not in existing]
        if new:
            with suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(new)
            log.info("created topics %s", [t.name for t in new])
        differences, danger = [], []
        old = [t for t in specs if t in existing]
        if old:
            described = {d["name"]: d for d in admin.describe_topics(old)}
            configs = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t) for t in old], config_filter="all"
            )
            for t in old:
                partitions, rf, want = specs[t]
                parts = described[t]["partitions"]
                have = {k: str(v.get("value")) for k, v in _topic_configs(configs, t).items()}
                if len(parts) != partitions:
                    differences.append(f"{t}: {len(parts)} partitions, settings say {partitions}")
                if parts and len(parts[0]["replica_nodes"]) != rf:
                    differences.append(f"{t}: replication factor {len(parts[0]['replica_nodes'])}, settings say {rf}")
                differences += [
                    f"{t}: {k} is {have.get(k)}, settings say {v}" for k, v in want.items() if have.get(k) != v
                ]
                danger += hazards(s, t, have)
        if danger:
            raise ConfigError(
                "; ".join(danger)
                + " (kafka-configs --alter --entity-type topics --entity-name <topic> --add-config ...)"
            )
        for d in differences:
            log.warning("topic differs from the settings: %s (kafka-configs --alter, or change the setting)", d)
        return differences
    finally:
        admin.close()


def hazards(s: Settings, topic: str, have: dict[str, str]) -> list[str]:
    """Topic settings no deployment may choose, whatever its other settings: each deletes records
    no one decided to lose. Compaction keeps only a customer's latest transaction, read or not;
    retention on the erasures topic forgets erasures, and a rebuild would bring those customers back."""
    if not have:  # its configs were not read: nothing to judge (the differences name every setting)
        return []
    policy = set(have.get("cleanup.policy", "delete").split(","))
    if topic == s.topic_transactions and "compact" in policy:
        return [
            f"{topic}: cleanup.policy {','.join(sorted(policy))}: compaction deletes transactions before they are read"
        ]
    if topic == s.erasures_topic and (
        "compact" not in policy or ("delete" in policy and have.get("retention.ms") != "-1")
    ):
        return [
            f"{topic}: cleanup.policy {','.join(sorted(policy))}, retention.ms {have.get('retention.ms')}: erasures would be "
            "deleted, and a rebuild would bring erased customers back (it must be compact, retention.ms -1)"
        ]
    return []


def _topic_configs(described: dict, topic: str) -> dict:
    """kafka-python's describe_configs answer, nested by resource type and name, for one topic."""
    for by_name in described.values():
        if isinstance(by_name, dict) and topic in by_name:
            return by_name[topic]
    return {}
