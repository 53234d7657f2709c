"""The state-store contract (tests/store_contract.py) on the in-memory store."""

import pytest

from segstream.state.memory import InMemoryStateStore
from tests.store_contract import *  # noqa: F401,F403 - the contract's tests, collected here
from tests.store_contract import H


@pytest.fixture()
def make_store():
    return lambda history=0: InMemoryStateStore(H, history=history)
