"""Kafka connection options from settings, for kafka-python and for Faust, and topic setup."""

from __future__ import annotations

import logging
from typing import Any

from segstream.config import Settings

log = logging.getLogger(__name__)


def kafka_python_options(s: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = {"bootstrap_servers": s.kafka_bootstrap.split(","), "security_protocol": s.kafka_security_protocol}
    if s.kafka_sasl_mechanism:
        opts.update(sasl_mechanism=s.kafka_sasl_mechanism, sasl_plain_username=s.kafka_sasl_username,
                    sasl_plain_password=s.kafka_sasl_password)
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
            username=s.kafka_sasl_username, password=s.kafka_sasl_password,
            mechanism=s.kafka_sasl_mechanism, ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context) if ssl_context else None


def ensure_topics(s: Settings) -> None:
    """Create the three topics if missing (idempotent; several processes may race)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**kafka_python_options(s), client_id="segstream-admin")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(t, s.topic_partitions, 1) for t in (s.topic_transactions, s.topic_changes, s.topic_dlq) if t not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
            log.info("created topics %s", [t.name for t in new])
    finally:
        admin.close()
