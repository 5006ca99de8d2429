"""The shared webhook inbox: Redis streams (see :mod:`airflow_provider_ghl.webhooks.inbox`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from airflow_provider_ghl.exceptions import GHLInboxError
from airflow_provider_ghl.webhooks.inbox import RETENTION_SECONDS, Backlog, Batch, InboxEvent, Key, version_rows

#: An unacked event's ``webhookId`` key lives this many retention periods (then the TTL restarts at the ack).
UNACKED_ID_FACTOR = 4
#: The first part of every key: one deployment's inbox; ``redis://<conn_id>/<prefix>`` names another, so two
#: deployments can share one Redis server without draining each other.
DEFAULT_PREFIX = "ghl"

# KEYS: stream, meta, id key. ARGV: id TTL (s), webhook id, type, timestamp, body. The server's clock stamps the
# event ('s', Unix seconds): the age of the oldest waiting event is the webhook lag.
# The event first, then the high-water mark, then the webhookId: a script that fails half-way (an error in XADD)
# leaves nothing, so the retry of a delivery that could not be stored is stored, never answered "duplicate".
_STORE = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
local seq = (tonumber(redis.call('HGET', KEYS[2], 'high_water')) or 0) + 1
local now = redis.call('TIME')
redis.call('XADD', KEYS[1], '0-' .. seq, 'w', ARGV[2], 't', ARGV[3], 'ts', ARGV[4], 'b', ARGV[5],
  's', now[1] .. '.' .. string.format('%06d', tonumber(now[2])))
redis.call('HSET', KEYS[2], 'high_water', seq)
redis.call('SET', KEYS[3], '1', 'EX', ARGV[1])
return seq
"""

# KEYS: meta. ARGV: limit. Returns {first, last} or {}.
_CLAIM = """
local m = redis.call('HMGET', KEYS[1], 'high_water', 'applied', 'open_first', 'open_last')
if m[3] then return {tonumber(m[3]), tonumber(m[4])} end
local hw, applied = tonumber(m[1]) or 0, tonumber(m[2]) or 0
if hw <= applied then return {} end
local last = math.min(hw, applied + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'open_first', applied + 1, 'open_last', last)
return {applied + 1, last}
"""

# KEYS: meta, stream. Every event not yet applied expires: nothing waits; an open batch's ack changes nothing.
_EXPIRE = """
local hw = tonumber(redis.call('HGET', KEYS[1], 'high_water')) or 0
redis.call('HSET', KEYS[1], 'applied', hw)
redis.call('HDEL', KEYS[1], 'open_first', 'open_last')
redis.call('XTRIM', KEYS[2], 'MINID', '0-' .. (hw + 1))
return hw
"""

# KEYS: meta, versions, stream. ARGV: first, last, id TTL (s), id key prefix, then field, value pairs.
# Returns 1 (acked), 0 (acked before), -1 (not the open batch).
_ACK = """
local m = redis.call('HMGET', KEYS[1], 'applied', 'open_first', 'open_last')
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
if (tonumber(m[1]) or 0) >= last then return 0 end
if tonumber(m[2]) ~= first or tonumber(m[3]) ~= last then return -1 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
for _, entry in ipairs(redis.call('XRANGE', KEYS[3], '0-' .. first, '0-' .. last)) do
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == 'w' then redis.call('EXPIRE', ARGV[4] .. fields[j + 1], ARGV[3]) end
  end
end
redis.call('XTRIM', KEYS[3], 'MINID', '0-' .. (last + 1))
redis.call('HSET', KEYS[1], 'applied', last)
redis.call('HDEL', KEYS[1], 'open_first', 'open_last')
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStreamInbox:
    """The inbox on a Redis server: a stream per location, shared by every machine.

    Keys of location L share the hash tag ``{L}`` (one cluster slot, so each script touches one slot):
    the stream ``<prefix>:webhooks:{L}`` (entry id ``0-<seq>``), its ``:meta`` hash (``high_water``, ``applied``,
    the open batch), its ``:versions`` hash (``<kind>:<record_id>`` -> timestamp) and one ``:id:<webhookId>``
    key per event, whose TTL restarts at the ack. Acked entries are trimmed from the stream at the ack. The set
    ``<prefix>:webhooks:locations`` lists the locations that ever stored an event.

    :param client: a ``redis.Redis`` client.
    :param url: the inbox URL, named in errors.
    :param prefix: the first part of every key (:data:`DEFAULT_PREFIX`).
    :param retention_seconds: TTL of a ``webhookId`` key from the ack; from the store it is
        :data:`UNACKED_ID_FACTOR` times that (the guard of an event waiting for a paused DAG).
    """

    def __init__(
        self, client: Any, *, url: str, retention_seconds: float = RETENTION_SECONDS, prefix: str = DEFAULT_PREFIX
    ) -> None:
        import redis

        self._redis_error = redis.RedisError
        self._client = client
        self.url = url
        self.prefix = prefix
        self._locations_key = f"{prefix}:webhooks:locations"
        self._installed_key = f"{prefix}:webhooks:installed"
        self.retention_seconds = int(retention_seconds)
        self._store = client.register_script(_STORE)
        self._claim = client.register_script(_CLAIM)
        self._ack = client.register_script(_ACK)
        self._expire = client.register_script(_EXPIRE)
        with self._errors():
            client.ping()  # fail at open, not at the first event

    @classmethod
    def from_connection(cls, redis_conn_id: str, prefix: str = DEFAULT_PREFIX) -> RedisStreamInbox:
        """The inbox on the server of an Airflow ``redis`` connection (as the shared budget gets it).

        :param redis_conn_id: the Airflow redis connection.
        :param prefix: the first part of every key of this inbox.
        """
        from airflow_provider_ghl.hooks.budget import redis_client

        client = redis_client(
            redis_conn_id, owner="[ghl_webhooks] inbox", feature="a redis:// inbox", setting="redis connection"
        )
        url = f"redis://{redis_conn_id}" + ("" if prefix == DEFAULT_PREFIX else f"/{prefix}")
        return cls(client, url=url, prefix=prefix)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._redis_error as err:
            raise GHLInboxError(self.url, f"{type(err).__name__}: {err}") from None

    def _keys(self, location_id: str) -> tuple[str, str, str, str]:
        tag = f"{self.prefix}:webhooks:{{{location_id}}}"
        return tag, f"{tag}:meta", f"{tag}:versions", f"{tag}:id:"

    def store(self, location_id: str, webhook_id: str, type: str, timestamp: str, body: dict[str, Any]) -> bool:
        stream, meta, _, id_prefix = self._keys(location_id)
        with self._errors():
            pipe = self._client.pipeline(transaction=False)  # one round trip; the script alone is atomic
            pipe.sadd(self._locations_key, location_id)
            self._store(
                keys=[stream, meta, id_prefix + webhook_id],
                args=[self.retention_seconds * UNACKED_ID_FACTOR, webhook_id, type, timestamp, orjson.dumps(body)],
                client=pipe,
            )
            _, seq = pipe.execute()
        return int(seq) > 0

    def _waiting(self) -> list[tuple[str, int, int]]:
        """``(location_id, high_water, applied)`` of each location with events not yet applied, sorted (one
        listing of the locations, one round trip for their marks)."""
        locations = sorted(_text(v) for v in self._client.smembers(self._locations_key))
        pipe = self._client.pipeline(transaction=False)
        for location_id in locations:
            pipe.hmget(self._keys(location_id)[1], "high_water", "applied")
        marks = [(int(hw or 0), int(applied or 0)) for hw, applied in pipe.execute()]
        return [(loc, hw, applied) for loc, (hw, applied) in zip(locations, marks, strict=True) if hw > applied]

    def pending(self) -> dict[str, int]:
        with self._errors():
            return {location_id: high_water for location_id, high_water, _ in self._waiting()}

    def backlog(self) -> dict[str, Backlog]:
        with self._errors():
            waiting = self._waiting()
            pipe = self._client.pipeline(transaction=False)
            for location_id, _, applied in waiting:
                pipe.xrange(self._keys(location_id)[0], f"0-{applied + 1}", "+", count=1)
            firsts = pipe.execute()
        backlog = {}
        for (location_id, high_water, applied), first in zip(waiting, firsts, strict=True):
            # Applied and expired entries are trimmed: the first entry left is the oldest waiting one.
            fields = first[0][1] if first else {}
            stamp = fields.get(b"s", fields.get("s"))
            backlog[location_id] = Backlog(high_water, high_water - applied, float(_text(stamp)) if stamp else None)
        return backlog

    def claim(self, location_id: str, limit: int = 10_000) -> Batch | None:
        if limit < 1:
            raise ValueError(f"limit: must be at least 1, got {limit}")
        with self._errors():
            reply = self._claim(keys=[self._keys(location_id)[1]], args=[limit])
        return Batch.of(location_id, int(reply[0]), int(reply[1])) if reply else None

    def events(self, batch: Batch) -> list[InboxEvent]:
        with self._errors():
            entries = self._client.xrange(
                self._keys(batch.location_id)[0], f"0-{batch.first_seq}", f"0-{batch.last_seq}"
            )
        events = []
        for entry_id, raw in entries:
            fields = {_text(k): v for k, v in raw.items()}
            events.append(
                InboxEvent(
                    seq=int(_text(entry_id).split("-")[1]),
                    webhook_id=_text(fields["w"]),
                    location_id=batch.location_id,
                    type=_text(fields["t"]),
                    timestamp=_text(fields["ts"]),
                    body=orjson.loads(fields["b"]),
                )
            )
        return events

    def versions(self, location_id: str, keys: Iterable[Key]) -> dict[Key, str]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        with self._errors():
            values = self._client.hmget(self._keys(location_id)[2], [f"{kind}:{rid}" for kind, rid in wanted])
        return {key: _text(value) for key, value in zip(wanted, values, strict=True) if value is not None}

    def ack(self, batch: Batch, versions: Mapping[Key, str]) -> None:
        stream, meta, versions_key, id_prefix = self._keys(batch.location_id)
        pairs = [item for kind, record_id, stamp in version_rows(versions) for item in (f"{kind}:{record_id}", stamp)]
        with self._errors():
            result = self._ack(
                keys=[meta, versions_key, stream],
                args=[batch.first_seq, batch.last_seq, self.retention_seconds, id_prefix, *pairs],
            )
        if int(result) < 0:
            raise GHLInboxError(
                self.url, f"ack of {batch.batch_id} for {batch.location_id!r}: it is not the open batch"
            )

    def installed(self) -> set[str]:
        with self._errors():
            return {_text(v) for v in self._client.smembers(self._installed_key)}

    def set_installed(self, location_id: str, installed: bool) -> None:
        with self._errors():
            if installed:
                self._client.sadd(self._installed_key, location_id)
                return
            self._client.srem(self._installed_key, location_id)
            stream, meta, _, _ = self._keys(location_id)
            self._expire(keys=[meta, stream])

    def close(self) -> None:
        with contextlib.suppress(self._redis_error):
            self._client.close()
