"""The command line explains itself: one clear line and a non-zero exit for each setup mistake."""

from __future__ import annotations

import time

import pytest

from segstream import __version__
from segstream.cli import main
from segstream.config import get_settings
from segstream.state.redis_client import reachable


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"segstream {__version__}"


def test_a_port_out_of_range_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["api", "--port", "99999"])
    assert e.value.code == 2 and "99999 is not a TCP port" in capsys.readouterr().err


def test_produce_file_without_a_path():
    with pytest.raises(SystemExit, match="--path EXPORT is required"):
        main(["produce", "file", "--dry-run"])


@pytest.fixture()
def no_broker(monkeypatch):
    monkeypatch.setenv("SEGSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("job", [["watch"], ["produce", "synthetic", "--customers", "2"], ["worker"]])
def test_an_unreachable_broker_is_one_line_at_once(no_broker, job):
    t0 = time.monotonic()
    with pytest.raises(SystemExit, match=r"Kafka is not reachable at 127\.0\.0\.1:1 .*SEGSTREAM_KAFKA_BOOTSTRAP"):
        main(job)
    assert time.monotonic() - t0 < 5


def test_an_unreachable_redis_is_one_line_at_once():
    from segstream.config import Settings
    from segstream.errors import ConfigError

    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"Redis at 127\.0\.0\.1:1 is not reachable .*SEGSTREAM_REDIS_URL") as err:
        reachable(Settings(redis_url="redis://:secret@127.0.0.1:1/0"))
    assert time.monotonic() - t0 < 5 and "secret" not in str(err.value)


@pytest.mark.parametrize("password", ["ab/cd+ef=", "p@ss:w/rd", "x%2Fy", "Zm9v/YmFy+cXV4LzEyMzQ1Njc4OTA="])
def test_any_password_works_as_given_and_no_fragment_of_it_reaches_a_message(password):
    """Issue 29: `openssl rand -base64 24` gives a '/' in most passwords; in the URL it broke
    parsing and the traceback printed the password's start."""
    import redis

    from segstream.config import Settings
    from segstream.errors import ConfigError
    from segstream.state.redis_client import client_for, connect

    c = client_for(Settings(redis_url="redis://127.0.0.1:1/0", redis_password=password))
    assert c.connection_pool.connection_kwargs["password"] == password
    try:
        connect(f"redis://:{password}@127.0.0.1:1/0")
    except ConfigError as err:
        assert password[:3] not in str(err) and "SEGSTREAM_REDIS_PASSWORD" in str(err)
    except redis.RedisError:
        pass


def test_produce_reports_what_the_worker_would_refuse_and_fails_above_the_threshold(monkeypatch, capsys):
    """The producer checks with the worker's rules: a deployment that refuses amounts above 50 EUR
    refuses most synthetic events, and the producer says so instead of printing a bare count."""
    import json

    monkeypatch.setenv("SEGSTREAM_MAX_AMOUNT", "50")
    get_settings.cache_clear()
    try:
        args = ["produce", "synthetic", "--customers", "5", "--months", "2", "--dry-run"]
        assert main(args) == 1
        out = json.loads(capsys.readouterr().out)
        assert out["rejected"] > 0 and out["events"] + out["rejected"] == out["lines"]
        assert set(out["reasons"]) == {"amount:out_of_range"}
        assert main([*args, "--max-rejected", "0.99"]) == 0
    finally:
        get_settings.cache_clear()


def test_a_job_without_its_extra_names_the_extra(monkeypatch):
    """The worker image has no research extra: `segstream classic` there says what to install."""
    import sys

    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")] + ["sklearn"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if scikit-learn were not installed
    monkeypatch.delitem(sys.modules, "segstream.models.research.classic", raising=False)  # imported afresh
    with pytest.raises(SystemExit, match=r"needs the 'research' extra .*pip install 'segstream\[research\]'"):
        main(["classic", "--data", "x.csv"])


def test_demo_json_is_strict_json(capsys):
    """Figures with nothing to score (no changes in a static bank) are null, which any JSON reader takes."""
    import json

    assert main(["demo", "--customers", "40", "--months", "7", "--json"]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert out["precision"] is None and out["change_precision_lenient"] is None and out["customers"] == 40
