"""A Redis connection with the retry policy every adapter shares.

redis-py retries transient connection errors itself (exponential backoff); we
only choose the policy, so a Redis restart shows up as latency, not a crash.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,
    OutOfMemoryError,
    ReadOnlyError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)
from redis.retry import Retry

from segstream.errors import ConfigError

# Redis cannot take our writes right now, though nothing is wrong with them: full
# (``maxmemory`` with ``noeviction``), down, loading its data set, or a replica after a
# failover, or a cluster whose failed master's replica is still being promoted. The worker
# backs off and resumes from its last checkpoint for all of them.
UNAVAILABLE = (
    ConnectionError,
    TimeoutError,
    OutOfMemoryError,
    BusyLoadingError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
)


def where(url: str) -> str:
    """host:port of a Redis URL, never its credentials (for messages)."""
    return url.rpartition("@")[2].split("/")[0].split("?")[0]


def connect(
    url: str,
    *,
    retries: int = 10,
    timeout_s: float = 5.0,
    cluster: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> redis.Redis:
    """``redis://[:password@]host:port/db`` or ``rediss://`` for TLS (ssl_* options in the URL query);
    with ``cluster``, any node of a Redis Cluster (the client finds the others and follows failovers).

    ``username`` and ``password`` (SEGSTREAM_REDIS_USERNAME, SEGSTREAM_REDIS_PASSWORD) override
    the URL's and are taken as they are: a password with ``/``, ``@`` or ``:`` (what ``openssl
    rand -base64`` gives) breaks a URL unless it is percent-encoded. A URL that does not parse
    is refused with its host only, never a fragment of its password."""
    creds = {k: v for k, v in (("username", username), ("password", password)) if v}
    try:
        if cluster:
            return RedisCluster.from_url(
                url,
                retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries),
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                **creds,
            )
        return redis.Redis.from_url(
            url,
            retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries),
            retry_on_error=[ConnectionError, TimeoutError],
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=15,
            **creds,
        )
    except (ValueError, TypeError):
        raise ConfigError(
            f"SEGSTREAM_REDIS_URL (for {where(url)}) does not parse; put the password in SEGSTREAM_REDIS_PASSWORD "
            "(or percent-encode it in the URL)"
        ) from None


def client_for(s, **kw) -> redis.Redis:
    """The deployment's Redis client from its settings: URL, cluster mode and credentials."""
    return connect(s.redis_url, cluster=s.redis_cluster, username=s.redis_username, password=s.redis_password, **kw)


def verify(client: redis.Redis) -> None:
    """Fail at start-up, with a message, on credentials Redis refuses: redis-py counts a wrong
    password as a connection error, which the retry policy (and the worker's backoff) would
    otherwise retry for ever. Unreachable is fine here: that is retried as usual later."""
    if isinstance(client, RedisCluster):  # it authenticated against a node to find the others
        return
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0), "retry_on_error": []}
    conn = pool.connection_class(**kwargs)
    try:
        conn.connect()  # authenticates
    except AuthenticationError as err:
        user = kwargs.get("username") or "default"
        raise ConfigError(f"Redis refused the credentials of user {user!r}: {err}") from None
    except (ConnectionError, TimeoutError):
        pass
    finally:
        conn.disconnect()


def reachable(s, timeout_s: float = 3.0) -> None:
    """Stop a process at start-up with one clear line when Redis does not answer (or refuses
    the credentials): later, an outage is ridden out with backoff; at start it is a setup error."""
    host = where(s.redis_url)
    try:
        client = client_for(s, retries=0, timeout_s=timeout_s)
    except (*UNAVAILABLE, redis.exceptions.RedisClusterException) as err:
        raise ConfigError(f"Redis Cluster at {host} is not reachable ({err}): is SEGSTREAM_REDIS_URL right?") from None
    verify(client)
    try:
        client.ping()
    except UNAVAILABLE as err:
        raise ConfigError(
            f"Redis at {host} is not reachable ({err}): is it running, and is SEGSTREAM_REDIS_URL right?"
        ) from None
    finally:
        client.close()


def wait_for_replicas(cluster: RedisCluster, marks: list[str], timeout_ms: int) -> int:
    """Wait until the masters holding ``marks`` have passed everything written so far to a replica.

    WAIT counts the writes of its own connection: a marker written on the node's connection after
    the writes to cover (ordered replication) stands for all of them. One marker per node is
    enough. Returns the masters that found no replica within ``timeout_ms``."""
    nodes: dict[str, str] = {}
    for mark in marks:
        nodes.setdefault(cluster.get_node_from_key(mark).name, mark)
    lonely = 0
    for name, mark in nodes.items():
        pipe = cluster.get_redis_connection(cluster.get_node(node_name=name)).pipeline(transaction=False)
        pipe.incr(mark)
        pipe.execute_command("WAIT", 1, timeout_ms)
        lonely += pipe.execute()[1] < 1
    return lonely
