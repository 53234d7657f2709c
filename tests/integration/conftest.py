import pytest

from segstream.state.redis_client import connect

from .harness import DEPLOYMENTS, fail_closed_violations, settings_from, system_dead_letters
from .servers import kafka_server, redis_cluster, redis_server


@pytest.fixture(autouse=True)
def offsets_never_pass_the_checkpoint(request):
    """After every integration test: no committed offset is past what Redis says was applied, and
    nothing was dead-lettered for the system's fault."""
    DEPLOYMENTS.clear()
    yield
    if "bootstrap" not in request.fixturenames:
        return
    deployments = [settings_from(env) for env in DEPLOYMENTS]
    DEPLOYMENTS.clear()
    bad = [v for s in deployments for v in fail_closed_violations(s)]
    assert not bad, f"offsets committed past the checkpoint: {bad}"
    letters = [f"{s.topic_dlq}: {r}" for s in deployments for r in system_dead_letters(s)]
    assert not letters, f"dead-lettered for the system's fault: {letters[:5]} ({len(letters)} in all)"


@pytest.fixture(scope="session")
def redis_srv(tmp_path_factory):
    srv = redis_server(tmp_path_factory.mktemp("redis"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture()
def redis_url(redis_srv):
    url = f"redis://127.0.0.1:{redis_srv.port}/0"
    connect(url).flushdb()
    return url


@pytest.fixture(scope="session")
def redis_cluster_srv(tmp_path_factory):
    srv = redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture()
def redis_cluster_url(redis_cluster_srv):
    """Any node of the cluster; the client finds the others. Every test writes its own namespace."""
    return f"redis://127.0.0.1:{redis_cluster_srv.port}/0"


@pytest.fixture(scope="session")
def kafka_srv(tmp_path_factory):
    srv = kafka_server(tmp_path_factory.mktemp("kafka"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def bootstrap(kafka_srv):
    return f"127.0.0.1:{kafka_srv.port}"


@pytest.fixture(scope="session")
def events():
    """250 customers x 8 months of the synthetic bank: the stream most worker tests replay."""
    from segstream.producers.synthetic import GeneratorConfig, SyntheticBank

    return list(SyntheticBank(GeneratorConfig(customers=250, months=8, seed=5)).events())
