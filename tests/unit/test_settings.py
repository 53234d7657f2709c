from segstream.config import Settings


def test_env_overrides(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_BATCH_SIZE", "77")
    monkeypatch.setenv("SEGSTREAM_CHECKPOINT_INTERVAL_S", "2.5")
    s = Settings()
    assert s.batch_size == 77 and s.checkpoint_interval_s == 2.5


def test_secrets_stay_out_of_repr():
    s = Settings(redis_url="redis://:hunter2@redis:6379/0", kafka_sasl_password="hunter2")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)


def test_kafka_options_agree_across_clients():
    from segstream.stream_app.kafka_config import aiokafka_options, kafka_python_options

    s = Settings(
        kafka_bootstrap="a:9093,b:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
    )
    kp, ak = kafka_python_options(s), aiokafka_options(s)
    assert kp["bootstrap_servers"] == ak["bootstrap_servers"] == ["a:9093", "b:9093"]
    for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        assert kp[key] == ak[key]
    assert "ssl_context" in ak and "ssl_cafile" not in ak
    plain = aiokafka_options(Settings())
    assert plain["security_protocol"] == "PLAINTEXT" and "ssl_context" not in plain
