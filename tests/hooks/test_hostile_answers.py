"""The hook against answers it must not trust (issue #16), over the wire, sync and async and through the
pagers: redirects to another host, wrong-shaped 2xx, slow drips and stalls, echoed secrets, huge bodies.

Each test checks the caller gets the named GHL* error within its bounds, that nothing reached the other host,
and (with the autouse leak check of ``conftest.py``) that no secret is in any exception or captured log.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from airflow_provider_ghl.exceptions import (
    GHLAuthError,
    GHLConnectionError,
    GHLRedirectError,
    GHLResponseTooLargeError,
    GHLServerError,
    GHLUnexpectedResponseError,
)
from airflow_provider_ghl.hooks import senders, transport
from airflow_provider_ghl.hooks.auth import TokenSet
from airflow_provider_ghl.hooks.ghl import GHLHook
from tests.hooks.conftest import remember_secret
from tests.hooks.hostile import (
    Answer,
    HostileServer,
    Received,
    drip,
    endless,
    header_drip,
    json_answer,
    raw_answer,
    redirect,
    stall_after_headers,
)

TOKEN = f"pit-{uuid.uuid4().hex}"
CLIENT_SECRET = f"secret{uuid.uuid4().hex}"
REFRESH_TOKEN = f"refresh{uuid.uuid4().hex}"
LOCATION = "loc-hostile"
CONTACT = {"id": "c1", "locationId": LOCATION}

MakeHook = Callable[..., GHLHook]


@pytest.fixture
def ghl() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[HostileServer]:
    """Another host (``localhost`` instead of ``127.0.0.1``): nothing may ever arrive here."""
    with HostileServer() as server:
        yield server
    assert server.received == [], "a request reached the other host"


@pytest.fixture
def make_hook(ghl: HostileServer, conn_factory: Callable[..., str]) -> Iterator[MakeHook]:
    hooks: list[GHLHook] = []

    def make(*, retry_max_seconds: float = 30.0, **extra: Any) -> GHLHook:
        settings = {"timeout": 2, "connect_timeout": 2, "max_retries": 2, **extra}
        conn_id = conn_factory(host=ghl.base_url, password=TOKEN, location_id=LOCATION, **settings)
        hook = GHLHook(conn_id, retry_backoff=0.01, retry_max_seconds=retry_max_seconds)
        hooks.append(hook)
        return hook

    yield make
    for hook in hooks:
        hook.close()


def _other_url(elsewhere: HostileServer, path: str) -> str:
    return elsewhere.base_url.replace("127.0.0.1", "localhost") + path


async def _collect(items: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item async for item in items]


def _both(hook: GHLHook, sync: Callable[[GHLHook], Any], run_async: Callable[[GHLHook], Any]) -> list[Any]:
    """Run the sync and the async form of one read; return what each raised (or returned)."""
    outcomes: list[Any] = []
    for run in (lambda: sync(hook), lambda: asyncio.run(run_async(hook))):
        try:
            outcomes.append(run())
        except Exception as err:
            outcomes.append(err)
    return outcomes


# ---------------------------------------------------------------------------------------------------------
# Redirects
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_to_another_host_is_never_followed(
    status: int, ghl: HostileServer, elsewhere: HostileServer, make_hook: MakeHook
) -> None:
    ghl.script = lambda request: redirect(status, _other_url(elsewhere, request.path))
    hook = make_hook()
    for err in _both(hook, lambda h: h.get_contact("c1"), lambda h: h.aget_contact("c1")):
        assert isinstance(err, GHLRedirectError)
        assert (err.method, err.path, err.status, err.target_host) == ("GET", "/contacts/c1", status, "localhost")
        assert f"HTTP {status}" in str(err) and "localhost" in str(err)
    assert len(ghl.received) == 2  # one per path: a redirect is not retried


def test_search_redirect_sends_its_filters_nowhere_else(
    ghl: HostileServer, elsewhere: HostileServer, make_hook: MakeHook
) -> None:
    ghl.script = lambda request: redirect(307, _other_url(elsewhere, request.path))
    hook = make_hook()
    outcomes = _both(
        hook,
        lambda h: list(h.iter_contacts(query="private filter")),
        lambda h: _collect(h.aiter_contacts(query="private filter")),
    )
    assert all(isinstance(err, GHLRedirectError) and err.path == "/contacts/search" for err in outcomes)
    assert [r.method for r in ghl.received] == ["POST", "POST"]


def test_same_host_redirect_is_not_followed_either(ghl: HostileServer, make_hook: MakeHook) -> None:
    ghl.script = lambda request: redirect(308, "/contacts/c2")
    hook = make_hook()
    for err in _both(hook, lambda h: h.get_contact("c1"), lambda h: h.aget_contact("c1")):
        assert isinstance(err, GHLRedirectError) and err.target_host is None
    assert [r.path for r in ghl.received] == ["/contacts/c1", "/contacts/c1"]


class _MemoryStore:
    """A token store in memory (the OAuth tests here never reach a real token endpoint)."""

    name = "memory store"

    def __init__(self) -> None:
        self.tokens: TokenSet | None = None

    def load(self) -> TokenSet | None:
        return self.tokens

    def save(self, tokens: TokenSet) -> None:
        self.tokens = tokens


def _oauth_hook(ghl: HostileServer, conn_factory: Callable[..., str]) -> GHLHook:
    remember_secret(CLIENT_SECRET, REFRESH_TOKEN)
    conn_id = conn_factory(
        host=ghl.base_url,
        login="client-id",
        password=CLIENT_SECRET,
        auth_type="oauth",
        refresh_token=REFRESH_TOKEN,
        location_id=LOCATION,
        timeout=2,
    )
    return GHLHook(conn_id, token_store=_MemoryStore(), retry_backoff=0.01)


def test_oauth_refresh_form_is_never_resent_to_another_host(
    ghl: HostileServer, elsewhere: HostileServer, conn_factory: Callable[..., str]
) -> None:
    ghl.script = lambda request: redirect(307, _other_url(elsewhere, "/oauth/token"))
    hook = _oauth_hook(ghl, conn_factory)
    with pytest.raises(GHLRedirectError) as caught:
        hook.refresh_oauth_token()
    assert (caught.value.method, caught.value.path, caught.value.target_host) == ("POST", "/oauth/token", "localhost")
    assert [(r.method, r.path) for r in ghl.received] == [("POST", "/oauth/token")]


# ---------------------------------------------------------------------------------------------------------
# Shapes of 2xx answers
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "found"),
    [
        (json_answer([CONTACT]), "an array instead of an object"),
        (json_answer(None), "an empty body"),
        (json_answer({"contact": None}), "'contact' is null"),
        (json_answer({"contact": "c1"}), "'contact' is a str"),
        (json_answer({}), "'contact' is missing"),
    ],
)
def test_wrong_shaped_contact_is_an_error_retried_like_a_5xx(
    answer: Answer, found: str, ghl: HostileServer, make_hook: MakeHook
) -> None:
    ghl.script = lambda request: answer
    hook = make_hook(max_retries=2)
    for err in _both(hook, lambda h: h.get_contact("c1"), lambda h: h.aget_contact("c1")):
        assert isinstance(err, GHLUnexpectedResponseError)
        assert "GET /contacts/c1: unexpected response shape" in str(err) and found in str(err)
    assert len(ghl.received) == 6  # 3 attempts each (max_retries=2): a GET is safe to repeat


def test_documented_null_is_accepted(ghl: HostileServer, make_hook: MakeHook) -> None:
    ghl.script = lambda request: json_answer({"contact": None})  # the duplicate lookup's "no match"
    hook = make_hook()
    outcomes = _both(
        hook,
        lambda h: h.get_duplicate_contact(email="a@example.com"),
        lambda h: h.aget_duplicate_contact(email="a@example.com"),
    )
    assert outcomes == [None, None]
    assert len(ghl.received) == 2


def test_wrong_shape_then_good_answer_recovers(ghl: HostileServer, make_hook: MakeHook) -> None:
    answers = iter([json_answer({"contact": None}), json_answer({"contact": CONTACT})])
    ghl.script = lambda request: next(answers)
    assert make_hook().get_contact("c1") == CONTACT


def test_wrong_shaped_write_answer_is_not_repeated(ghl: HostileServer, make_hook: MakeHook) -> None:
    ghl.script = lambda request: json_answer([CONTACT], status=201)
    with pytest.raises(GHLUnexpectedResponseError, match="POST /contacts/: unexpected response shape"):
        make_hook().create_contact({"email": "a@example.com"})
    assert len(ghl.received) == 1  # a create could duplicate: never repeated


@pytest.mark.parametrize(
    "page", [{"contacts": None, "total": 7}, {"total": 7}, {"contacts": {"id": "c1"}, "total": 7}, []]
)
def test_search_page_without_contacts_is_an_error_not_the_end(
    page: Any, ghl: HostileServer, make_hook: MakeHook
) -> None:
    ghl.script = lambda request: json_answer(page)
    hook = make_hook(max_retries=0)
    outcomes = _both(hook, lambda h: list(h.iter_contacts()), lambda h: _collect(h.aiter_contacts()))
    assert all(isinstance(err, GHLUnexpectedResponseError) and err.path == "/contacts/search" for err in outcomes)


def test_search_total_that_is_not_a_number_is_an_error(ghl: HostileServer, make_hook: MakeHook) -> None:
    ghl.script = lambda request: json_answer({"contacts": [], "total": "seven"})
    hook = make_hook(max_retries=0)
    outcomes = _both(hook, lambda h: list(h.iter_contacts()), lambda h: _collect(h.aiter_contacts()))
    assert all(isinstance(err, GHLUnexpectedResponseError) and "'total'" in str(err) for err in outcomes)


@pytest.mark.parametrize(
    ("walk", "page"),
    [
        (lambda h: list(h.iter_contacts_legacy()), {"contacts": None, "meta": {}}),
        (lambda h: list(h.iter_contacts_by_business("b1")), {"contacts": "none", "count": 3}),
        (lambda h: list(h.iter_location_tasks()), {"tasks": None, "total": 3}),
    ],
)
def test_other_pagers_reject_wrong_pages(
    walk: Callable[[GHLHook], Any], page: Any, ghl: HostileServer, make_hook: MakeHook
) -> None:
    ghl.script = lambda request: json_answer(page)
    with pytest.raises(GHLUnexpectedResponseError, match="unexpected response shape"):
        walk(make_hook(max_retries=0))


# ---------------------------------------------------------------------------------------------------------
# Deadlines and timeouts
# ---------------------------------------------------------------------------------------------------------
def test_a_drip_is_cut_at_the_attempt_deadline(ghl: HostileServer, make_hook: MakeHook) -> None:
    # Every byte comes before the 0.5 s read timeout; only a deadline on the whole answer (1 s) can stop it.
    ghl.script = lambda request: drip(b'{"contact": {"id": "c1"}}' + b" " * 200, 0.2)
    hook = make_hook(timeout=0.5, connect_timeout=0.5, max_retries=0)
    for run in (lambda: hook.get_contact("c1"), lambda: asyncio.run(hook.aget_contact("c1"))):
        started = time.monotonic()
        with pytest.raises(GHLConnectionError, match="deadline") as caught:
            run()
        assert time.monotonic() - started < 1.0 + 1.0  # the deadline plus generous slack, not 45 s of drip
        assert caught.value.transient


def test_headers_dripped_line_by_line_are_cut_at_the_deadline(ghl: HostileServer, make_hook: MakeHook) -> None:
    ghl.script = lambda request: header_drip(0.2)
    hook = make_hook(timeout=0.5, connect_timeout=0.5, max_retries=0)
    for run in (lambda: hook.get_contact("c1"), lambda: asyncio.run(hook.aget_contact("c1"))):
        started = time.monotonic()
        with pytest.raises(GHLConnectionError, match="deadline"):
            run()
        assert time.monotonic() - started < 1.0 + 1.0


def test_retries_of_a_drip_respect_the_retry_bound_as_a_whole(ghl: HostileServer, make_hook: MakeHook) -> None:
    ghl.script = lambda request: drip(b" " * 200, 0.2)
    hook = make_hook(timeout=0.5, connect_timeout=0.5, max_retries=50, retry_max_seconds=2.0)
    for run in (lambda: hook.get_contact("c1"), lambda: asyncio.run(hook.aget_contact("c1"))):
        started = time.monotonic()
        with pytest.raises(GHLConnectionError, match="deadline"):
            run()
        # The bound, plus at most one last attempt's minimum time, plus slack.
        assert time.monotonic() - started < 2.0 + transport.MIN_ATTEMPT_SECONDS + 1.5
    assert len(ghl.received) >= 4  # it did retry (about 2 attempts of 1 s per path)


def test_a_read_timeout_says_so(ghl: HostileServer, make_hook: MakeHook) -> None:
    ghl.script = lambda request: stall_after_headers(3.0)
    hook = make_hook(timeout=0.5, connect_timeout=2, max_retries=0)
    for err in _both(hook, lambda h: h.get_contact("c1"), lambda h: h.aget_contact("c1")):
        assert isinstance(err, GHLConnectionError)
        assert "read timeout" in str(err) and "ConnectionError" not in str(err)


# ---------------------------------------------------------------------------------------------------------
# Secrets in error text
# ---------------------------------------------------------------------------------------------------------
def _echo_page(request: Received) -> Answer:
    """An error page of a broken gateway that echoes the request headers, long and multi-line."""
    headers = sorted(request.headers.items(), key=lambda item: item[0] != "Authorization")
    lines = "\n".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in headers)
    page = f"<html>\n<body>\n<h1>502 Bad Gateway</h1>\n<table>\n{lines}\n</table>"
    page += f"\n<p>raw token {TOKEN}</p>\n{'padding ' * 40}\n</body>\n</html>\n"
    return raw_answer(page.encode(), status=502, content_type="text/html")


def test_echoed_token_never_reaches_an_exception_or_a_log(
    ghl: HostileServer, make_hook: MakeHook, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    ghl.script = _echo_page
    hook = make_hook(max_retries=1)
    for err in _both(hook, lambda h: h.get_contact("c1"), lambda h: h.aget_contact("c1")):
        assert isinstance(err, GHLServerError) and err.status == 502
        for text in (str(err), repr(err), err.ghl_message or "", *map(str, err.args)):
            assert TOKEN not in text
        assert "\n" not in str(err) and "<" not in (err.ghl_message or "")
        assert len(err.ghl_message or "") <= 200
        assert "502 Bad Gateway" in str(err)  # still says what happened
    # The hook's logger writes through Airflow's structlog (the output) or stdlib logging (caplog).
    out, _ = capfd.readouterr()
    sys.stdout.write(out)  # for the autouse leak check too
    lines = out.splitlines() + [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    retries = [line for line in lines if "retrying" in line]
    assert len(retries) == 2 and all(TOKEN not in line and "[redacted]" in line for line in retries)


def test_echoed_token_past_the_cut_is_redacted_first(ghl: HostileServer, make_hook: MakeHook) -> None:
    # A secret straddling the length bound must not survive as a prefix.
    ghl.script = lambda request: raw_answer(
        (f"{'x' * 190} token={TOKEN}").encode(), status=500, content_type="text/plain"
    )
    with pytest.raises(GHLServerError) as caught:
        make_hook(max_retries=0).get_contact("c1")
    assert TOKEN[:12] not in str(caught.value)


def test_oauth_error_echoing_the_form_keeps_its_secrets(
    ghl: HostileServer, conn_factory: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    ghl.script = lambda request: raw_answer(b"bad request: " + request.body, status=400, content_type="text/plain")
    hook = _oauth_hook(ghl, conn_factory)
    with pytest.raises(GHLAuthError) as caught:
        hook.refresh_oauth_token()
    err = caught.value
    assert REFRESH_TOKEN in ghl.received[0].body.decode()  # the form did carry them
    for text in (str(err), err.ghl_message or "", caplog.text):
        assert CLIENT_SECRET not in text and REFRESH_TOKEN not in text
    assert "grant_type=refresh_token" in str(err)  # the rest of the text stays readable


# ---------------------------------------------------------------------------------------------------------
# Size cap
# ---------------------------------------------------------------------------------------------------------
def test_declared_length_over_the_cap_fails_before_reading(ghl: HostileServer, make_hook: MakeHook) -> None:
    ghl.script = lambda request: Answer(200, {"Content-Type": "application/json"}, [], length=10**9)
    hook = make_hook(max_retries=2)
    for err in _both(hook, lambda h: h.get_contact("c1"), lambda h: h.aget_contact("c1")):
        assert isinstance(err, GHLResponseTooLargeError) and err.limit == senders.MAX_RESPONSE_BYTES
        assert "GET /contacts/c1" in str(err) and not err.transient
    assert len(ghl.received) == 2  # a repeat would be as large: not retried


def test_endless_body_is_cut_at_the_cap_with_memory_bounded(
    ghl: HostileServer, make_hook: MakeHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(senders, "MAX_RESPONSE_BYTES", 1024 * 1024)
    ghl.script = lambda request: endless()
    hook = make_hook(max_retries=0)
    tracemalloc.start()
    try:
        with pytest.raises(GHLResponseTooLargeError, match="larger than the 1048576 bytes"):
            hook.get_contact("c1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # the cap plus chunks, never the whole (endless) body
    with pytest.raises(GHLResponseTooLargeError):
        asyncio.run(hook.aget_contact("c1"))


def test_a_normal_answer_still_passes(ghl: HostileServer, make_hook: MakeHook) -> None:
    ghl.script = lambda request: json_answer({"contact": CONTACT})
    hook = make_hook()
    assert _both(hook, lambda h: h.get_contact("c1"), lambda h: h.aget_contact("c1")) == [CONTACT, CONTACT]
    assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in ghl.received)
