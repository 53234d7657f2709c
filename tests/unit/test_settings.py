from segstream.config import Settings


def test_env_overrides(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_BATCH_SIZE", "77")
    monkeypatch.setenv("SEGSTREAM_INGEST", "batch")
    s = Settings()
    assert s.batch_size == 77 and s.ingest == "batch"


def test_secrets_stay_out_of_repr():
    s = Settings(redis_url="redis://:hunter2@redis:6379/0", kafka_sasl_password="hunter2")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)
