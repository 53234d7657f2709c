"""The state-store contract (tests/store_contract.py) on Redis, on a real redis-server."""

import uuid

import pytest

from segstream.state.redis_client import connect
from segstream.state.redis_store import RedisStateStore
from tests.store_contract import *  # noqa: F401,F403 - the contract's tests, collected here
from tests.store_contract import H

pytestmark = pytest.mark.integration


@pytest.fixture()
def make_store(redis_url):
    return lambda history=0: RedisStateStore(connect(redis_url), H, f"contract-{uuid.uuid4().hex[:6]}", history=history)
