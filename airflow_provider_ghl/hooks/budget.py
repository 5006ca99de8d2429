"""Which limiter spends a budget: the connection's ``budget_backend`` picks who shares it.

* ``process``: one :class:`~airflow_provider_ghl.hooks.ratelimit.RateLimiter` per process (threads share it);
* ``host``: every process of the machine, through a locked file in ``budget_dir``
  (:mod:`~airflow_provider_ghl.hooks.budget_host`);
* ``redis``: every process of every machine, through scripts on a Redis server
  (:mod:`~airflow_provider_ghl.hooks.budget_redis`).

Whatever the backend, the window follows GHL's ``X-RateLimit-*`` headers and a 429 pauses every sharer.
In the triggerer the process limiter's steps run on the event loop (they only take its own lock); the shared
backends' steps (a file lock another process may hold, a Redis round trip bounded by :data:`REDIS_TIMEOUT`)
say ``blocking_steps`` and run in a thread, so a slow backend never stalls the loop's other triggers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.ratelimit import RateLimiter, limiter_for

#: Seconds a Redis command may take before the backend counts as down (a hang would hold every task).
REDIS_TIMEOUT = 5.0


def split_budget_warning(config: GHLConnectionConfig, location_id: str | None, foreign: int) -> str:
    """What to tell the user when GHL keeps counting requests on a budget that none of its sharers sent.

    :param config: the connection (its backend names the likely cause and the remedy).
    :param location_id: the location whose budget it is.
    :param foreign: how many such requests were seen so far.
    """
    where = f"location {location_id or config.location_id or '?'}'s rate budget"
    if config.budget_backend == "host":
        cause = (
            "no process on this machine sent. The location's tasks are probably running on several machines "
            "(Celery or Kubernetes workers): each machine keeps its own budget file in budget_dir and meets the "
            "others' requests as 429s and waits."
        )
        remedy = "budget_backend=redis with budget_redis_conn_id (an Airflow redis connection)"
    else:
        cause = "no thread of this process sent: other tasks or the triggerer spend the same budget."
        remedy = "budget_backend=host (one machine) or budget_backend=redis with budget_redis_conn_id (several)"
    return (
        f"GHL counted {foreign} requests on {where} that {cause} Set {remedy} on connection {config.conn_id!r} "
        "so every worker shares one budget. (A client outside Airflow using the same app or token also shows "
        "up this way.)"
    )


def budget_id(*parts: object) -> str:
    """A stable name for one budget from what identifies it (its parts are digests, never a token)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def budget_limiter(config: GHLConnectionConfig, key: Hashable) -> RateLimiter:
    """The limiter of budget ``key`` (token principal and location) under ``config``'s backend.

    :param config: the ``ghl`` connection: backend, its settings, the starting budget.
    :param key: the token provider's rate key (never the raw token).
    """
    backend = config.budget_backend
    if backend == "process":
        return limiter_for(key, config.max_requests, config.interval_ms)
    # Another server (a sandbox, a proxy) is another budget, even for the same token.
    name = budget_id(config.base_url, key)
    if backend == "host":
        from airflow_provider_ghl.hooks.budget_host import HostRateLimiter

        path = Path(config.budget_dir) / f"{name}.json"
        return limiter_for(
            ("host", str(path)),
            config.max_requests,
            config.interval_ms,
            make=lambda: HostRateLimiter(config.max_requests, config.interval_ms, path=path, conn_id=config.conn_id),
        )
    redis_conn_id = config.budget_redis_conn_id or ""
    return limiter_for(
        ("redis", redis_conn_id, name),
        config.max_requests,
        config.interval_ms,
        make=lambda: _redis_limiter(config, name, redis_conn_id),
    )


def _redis_limiter(config: GHLConnectionConfig, name: str, redis_conn_id: str) -> RateLimiter:
    client = redis_client(
        redis_conn_id, owner=f"Connection {config.conn_id!r}", feature="budget_backend=redis",
        setting="budget_redis_conn_id",
    )  # fmt: skip
    from airflow_provider_ghl.hooks.budget_redis import RedisRateLimiter

    return RedisRateLimiter(
        config.max_requests,
        config.interval_ms,
        client=client,
        budget_id=name,
        conn_id=config.conn_id,
        redis_conn_id=redis_conn_id,
    )


def redis_client(redis_conn_id: str, *, owner: str, feature: str, setting: str) -> Any:
    """A ``redis.Redis`` client for an Airflow ``redis`` connection, every command bounded by
    :data:`REDIS_TIMEOUT`; shared by the redis budget backend and the webhook inbox.

    :param redis_conn_id: the Airflow ``redis`` connection (apache-airflow-providers-redis).
    :param owner: who asks, at the start of each error (e.g. ``Connection 'ghl_default'``).
    :param feature: what needs Redis, in the error when the provider is missing.
    :param setting: the option naming the connection, in the error when it does not exist.
    :raises GHLConfigError: the redis provider is not installed, or the connection does not exist.
    """
    try:
        from airflow.providers.redis.hooks.redis import RedisHook
    except ImportError:
        raise GHLConfigError(
            f"{owner}: {feature} needs apache-airflow-providers-redis (pip install 'airflow-provider-ghl[redis]')."
        ) from None
    from airflow.exceptions import AirflowNotFoundException

    try:
        client: Any = RedisHook(redis_conn_id=redis_conn_id).get_conn()
    except AirflowNotFoundException:
        raise GHLConfigError(f"{owner}: {setting} {redis_conn_id!r} is not an Airflow connection.") from None
    pool_kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if isinstance(pool_kwargs, dict):  # RedisHook sets no timeouts: a silent server would hang every task
        for option in ("socket_timeout", "socket_connect_timeout"):
            if pool_kwargs.get(option) is None:
                pool_kwargs[option] = REDIS_TIMEOUT
    return client
