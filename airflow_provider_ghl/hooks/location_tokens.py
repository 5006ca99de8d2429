"""Location tokens an agency (Company) token mints, shared by every process that needs them.

An agency install reaches each location with a token from ``POST /oauth/locationToken``, valid for a day. Minted
in every task process, each of hundreds of locations would cost the company a mint per task. So the minted
token is kept where the connection's ``budget_backend`` already reaches every sharer of the rate budget:

* ``process``: nowhere beyond the process (the token manager keeps it in memory);
* ``host``: a file per location in ``budget_dir`` (a
  :class:`~airflow_provider_ghl.hooks.private_files.PrivateDirectory`,
  mode 0600), minted under the file's lock so that the machine mints once;
* ``redis``: a key per location that expires with the token, minted under a short lock key so that every
  machine together mints once.

A stored token is encrypted with Airflow's Fernet key (``[core] fernet_key``), as Variables are; without one
it is stored as is, readable only by the Airflow user (host) or whoever can read the Redis server.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson

from airflow_provider_ghl.exceptions import GHLBudgetBackendError
from airflow_provider_ghl.hooks.budget import budget_id, redis_client
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.private_files import PrivateDirectory

#: How long one process may hold the right to mint a location's token on Redis before others may take it.
MINT_LOCK_MS = 30_000
#: Between two looks at a token another process is minting.
MINT_WAIT_STEP = 0.05


class MintedToken(NamedTuple):
    """A location token and when GHL said it expires (POSIX time)."""

    token: str
    expires_at: float


class LocationTokens(Protocol):
    """Where minted location tokens are shared."""

    def obtain(
        self, location_id: str, mint: Callable[[], MintedToken], usable: Callable[[MintedToken], bool]
    ) -> MintedToken:
        """The shared token of ``location_id`` if ``usable``, else one ``mint`` stored for the others.

        :param location_id: the location.
        :param mint: asks GHL for a new token (called at most once, by one sharer at a time).
        :param usable: whether a stored token may still be used (not too close to expiry).
        """
        ...

    def discard(self, location_id: str, token: str | None = None) -> None:
        """Forget the location's shared token (only if it is ``token``, when given): GHL refused it, or the
        app was uninstalled there."""
        ...


class ProcessLocationTokens:
    """``budget_backend=process``: nothing is shared beyond the process."""

    def obtain(
        self, location_id: str, mint: Callable[[], MintedToken], usable: Callable[[MintedToken], bool]
    ) -> MintedToken:
        return mint()

    def discard(self, location_id: str, token: str | None = None) -> None:
        return None


def _token_name(config: GHLConnectionConfig, location_id: str) -> str:
    """The shared token's name (a digest, never a token): the server, the app, the company and the location."""
    return budget_id(config.base_url, config.client_id, config.company_id, location_id)


def _fernet() -> Any:
    from airflow.models.crypto import get_fernet

    return get_fernet()


def _encode(minted: MintedToken) -> bytes:
    return bytes(_fernet().encrypt(orjson.dumps(minted._asdict())))


def _decode(raw: bytes | None) -> MintedToken | None:
    """The stored token, or None when there is none or it cannot be read (torn, or another Fernet key)."""
    if not raw:
        return None
    try:
        data = orjson.loads(_fernet().decrypt(raw))
        return MintedToken(str(data["token"]), float(data["expires_at"]))
    except Exception:  # an unreadable entry is only a cache miss: mint anew
        return None


class HostLocationTokens:
    """``budget_backend=host``: one file per location beside the budget files.

    :param config: the connection (its ``budget_dir``, server, app and company name the files).
    """

    def __init__(self, config: GHLConnectionConfig) -> None:
        self.config = config
        directory = Path(config.budget_dir)
        self._dir = PrivateDirectory(
            directory,
            lambda problem: GHLBudgetBackendError("host", config.conn_id, f"budget_dir {str(directory)!r} {problem}"),
        )

    def _name(self, location_id: str) -> str:
        return "token-" + _token_name(self.config, location_id)

    def obtain(
        self, location_id: str, mint: Callable[[], MintedToken], usable: Callable[[MintedToken], bool]
    ) -> MintedToken:
        # The mint happens under the file's lock: the machine's other processes wait for its token.
        with self._dir.locked(self._name(location_id)) as file:
            held = _decode(file.data)
            if held is not None and usable(held):
                return held
            minted = mint()
            file.write(_encode(minted))
            return minted

    def discard(self, location_id: str, token: str | None = None) -> None:
        with self._dir.locked(self._name(location_id)) as file:
            held = _decode(file.data)
            if held is not None and (token is None or held.token == token):
                file.write(b"")


#: Deletes the mint lock only if it is still the caller's (it may have expired and been taken by another).
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RedisLocationTokens:
    """``budget_backend=redis``: one key per location that expires with its token.

    :param config: the connection (its ``budget_redis_conn_id``; server, app and company name the keys).
    """

    def __init__(self, config: GHLConnectionConfig) -> None:
        self.config = config
        self.redis_conn_id = config.budget_redis_conn_id or ""
        self._client = redis_client(
            self.redis_conn_id, owner=f"Connection {config.conn_id!r}", feature="budget_backend=redis",
            setting="budget_redis_conn_id",
        )  # fmt: skip

    def _key(self, location_id: str) -> str:
        return "ghl:location-token:" + _token_name(self.config, location_id)

    def _error(self, err: Exception) -> GHLBudgetBackendError:
        detail = f"Redis {self.redis_conn_id!r} failed ({type(err).__name__}) while sharing a location token"
        return GHLBudgetBackendError("redis", self.config.conn_id, detail)

    def obtain(
        self, location_id: str, mint: Callable[[], MintedToken], usable: Callable[[MintedToken], bool]
    ) -> MintedToken:
        import redis

        key, lock = self._key(location_id), self._key(location_id) + ":mint"
        mine = secrets.token_hex(8)
        try:
            while True:
                held = _decode(self._client.get(key))
                if held is not None and usable(held):
                    return held
                if self._client.set(lock, mine, nx=True, px=MINT_LOCK_MS):
                    break
                time.sleep(MINT_WAIT_STEP)  # another process is minting it: wait for its token
            try:
                held = _decode(self._client.get(key))  # minted while this process waited for the lock
                if held is not None and usable(held):
                    return held
                minted = mint()
                ttl_ms = int((minted.expires_at - time.time()) * 1000)
                if ttl_ms > 0:
                    self._client.set(key, _encode(minted), px=ttl_ms)
                return minted
            finally:
                self._client.eval(_RELEASE, 1, lock, mine)
        except redis.RedisError as err:
            raise self._error(err) from None

    def discard(self, location_id: str, token: str | None = None) -> None:
        import redis

        key = self._key(location_id)
        try:
            held = _decode(self._client.get(key))
            if held is not None and (token is None or held.token == token):
                self._client.delete(key)
        except redis.RedisError as err:
            raise self._error(err) from None


_SHARED: dict[tuple[Any, ...], LocationTokens] = {}
_SHARED_LOCK = threading.Lock()


def location_tokens(config: GHLConnectionConfig) -> LocationTokens:
    """Where ``config``'s minted location tokens are shared: its ``budget_backend``'s reach. One per backend
    place and agency in a process, as the budget's limiters are: the host directory stays open once, and the
    Redis client is made once, however many hooks (a triggerer makes one per trigger).

    :param config: the ``ghl`` connection of an agency install.
    """
    if config.budget_backend == "process":
        return ProcessLocationTokens()
    place = config.budget_dir if config.budget_backend == "host" else config.budget_redis_conn_id
    key = (config.budget_backend, place, config.conn_id, config.base_url, config.client_id, config.company_id)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = (
                HostLocationTokens(config) if config.budget_backend == "host" else RedisLocationTokens(config)
            )
        return _SHARED[key]
