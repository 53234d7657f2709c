"""The state-store contract (tests/store_contract.py) on Redis: a single redis-server and a Redis Cluster."""

import uuid

import pytest

from segstream.state.redis_client import connect
from segstream.state.redis_store import RedisStateStore
from tests.store_contract import *  # noqa: F401,F403 - the contract's tests, collected here
from tests.store_contract import H

pytestmark = pytest.mark.integration


@pytest.fixture(params=["single", "cluster"])
def make_store(request):
    if request.param == "single":
        url, cluster = request.getfixturevalue("redis_url"), False
    else:
        url, cluster = request.getfixturevalue("redis_cluster_url"), True

    def make(history=0):
        client = connect(url, cluster=cluster)
        return RedisStateStore(client, H, f"contract-{uuid.uuid4().hex[:6]}", history=history, groups=4)

    return make
