"""One operation request as data, how the endpoint table turns it into a request, and how the hook's typed methods
are made from the request builders of :mod:`~airflow_provider_ghl.hooks.operations`.

A builder shapes its arguments into a :class:`Request` once; :func:`operation` makes the sync method of
:class:`~airflow_provider_ghl.hooks.ghl.GHLHook` from it and :func:`async_operation` the async twin, so the two
can never drift apart (the way a sensor's condition builds one request for poke and trigger).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, Concatenate, Generic, NamedTuple, ParamSpec, TypeVar
from urllib.parse import quote

from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.endpoints import ENDPOINTS, Endpoint

P = ParamSpec("P")
T = TypeVar("T")

DateLike = datetime | str


def iso_utc(value: DateLike) -> str:
    """ISO-8601 in UTC with a ``Z``, as GHL writes dates; naive datetimes are taken as UTC."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def compact(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values: GHL's validators reject explicit nulls for optional fields."""
    return {k: v for k, v in mapping.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Request(Generic[T]):
    """One operation of :data:`~airflow_provider_ghl.hooks.endpoints.ENDPOINTS` with its arguments.

    ``T`` is what running it returns (for type checkers only).

    :param operation: operation name, e.g. ``get_contact``.
    :param path_params: values of the path template (GHL's names, e.g. ``contactId``).
    :param params: query parameters (``None`` values are dropped).
    :param json: JSON body.
    :param location_id: location of the request; None: the hook's / connection's.
    """

    operation: str
    path_params: Mapping[str, Any] | None = None
    params: Mapping[str, Any] | None = None
    json: Any = None
    location_id: str | None = None


class Resolved(NamedTuple):
    """A :class:`Request` resolved against the endpoint table and the connection: ready to send."""

    endpoint: Endpoint
    path: str
    query: dict[str, Any] | None
    body: Any
    location_id: str | None
    #: The operation's name in the endpoint table.
    operation: str = ""


def resolve(request: Request[Any], config: GHLConnectionConfig) -> Resolved:
    """Build path, query and body of ``request`` from its endpoint row; place the location where GHL wants it."""
    try:
        endpoint = ENDPOINTS[request.operation]
    except KeyError:
        raise ValueError(f"Unknown GHL operation {request.operation!r}") from None
    template = endpoint.path
    if config.api_version == "v3" and endpoint.v3_path is not None:
        if not endpoint.v3_path:
            raise GHLConfigError(f"{request.operation} ({endpoint.method} {endpoint.path}) was removed in API v3.")
        template = endpoint.v3_path
    if config.api_version == "v3" and endpoint.v3_shape is not None:
        endpoint = endpoint._replace(shape=endpoint.v3_shape)  # the answer is checked as v3 documents it
    # An agency-level call belongs to no location: it runs on the company's token and budget.
    location = None if endpoint.agency else request.location_id or config.location_id
    values = dict(request.path_params or {})
    query = compact(request.params or {})
    body = request.json
    if endpoint.location is not None:
        if not location:
            raise GHLConfigError(
                f"{request.operation} needs a location: pass location_id or set location_id on connection "
                f"{config.conn_id!r}."
            )
        if endpoint.location == "query":
            query.setdefault("locationId", location)
        elif endpoint.location == "body":
            body = {"locationId": location, **(body or {})}
        else:
            values["locationId"] = location
    for name, value in values.items():
        if value is None or str(value) == "":
            raise ValueError(f"{request.operation}: path parameter {name} is empty")
    # Quote every path value so an id can never reach another route.
    path = template.format(**{k: quote(str(v), safe="") for k, v in values.items()})
    return Resolved(endpoint, path, query or None, body, location, request.operation)


class RequestRunner:
    """What the hook's mixins rely on: running a :class:`Request` (implemented by ``GHLHook``)."""

    def run(self, request: Request[T]) -> T:
        """Send ``request`` through the sync funnel and return its resource."""
        raise NotImplementedError

    async def arun(self, request: Request[T]) -> T:
        """Send ``request`` (a read) through the async funnel and return its resource."""
        raise NotImplementedError


def _method_signature(build: Callable[..., Any]) -> inspect.Signature:
    """The builder's signature as the hook method's: ``self`` first, returning the resource, not the Request."""
    signature = inspect.signature(build)
    returns = signature.return_annotation
    if isinstance(returns, str) and returns.startswith("Request[") and returns.endswith("]"):
        returns = returns[len("Request[") : -1]
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return signature.replace(parameters=[self_param, *signature.parameters.values()], return_annotation=returns)


def operation(build: Callable[P, Request[T]]) -> Callable[Concatenate[RequestRunner, P], T]:
    """The hook method that runs what ``build`` returns (same arguments, same docstring)."""

    @functools.wraps(build)
    def method(self: RequestRunner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.run(build(*args, **kwargs))

    method.__signature__ = _method_signature(build)  # type: ignore[attr-defined]
    return method


def async_operation(build: Callable[P, Request[T]]) -> Callable[Concatenate[RequestRunner, P], Coroutine[Any, Any, T]]:
    """The async twin of :func:`operation`: the same request, sent with the async funnel (reads only)."""

    @functools.wraps(build)
    async def method(self: RequestRunner, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.arun(build(*args, **kwargs))

    method.__name__ = method.__qualname__ = f"a{build.__name__}"
    summary = f"Async :meth:`{build.__name__}`: the same request, for the triggerer."
    method.__doc__ = f"{summary}\n\n{inspect.cleandoc(build.__doc__ or '')}"
    method.__signature__ = _method_signature(build)  # type: ignore[attr-defined]
    return method
