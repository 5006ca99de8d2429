"""Error answers of the sandbox, in GHL's shape: ``{"statusCode", "message", ...}``.

Routes and the token registry raise :class:`SandboxHTTPError`; :func:`install_error_handlers` turns it, and
FastAPI's request validation errors, into GHL-shaped JSON responses. The request gate builds its own refusals
(401, 429, injected 5xx, ...) with :func:`error_body`.

Not to be confused with :class:`airflow_provider_ghl.exceptions.GHLError`: that is what the provider (the
client) raises; this is the server side of the wire.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

UNPROCESSABLE = "Unprocessable Entity"


def error_body(status: int, message: str | list[str], **extra: Any) -> dict[str, Any]:
    """GHL's error body: ``statusCode`` and ``message`` first, then any extra fields (``error``, ``meta``, ...).

    :param status: the HTTP status, repeated in the body as GHL does.
    :param message: one message, or the list of validator messages of a 422.
    :param extra: further fields, in the order they should appear.
    """
    return {"statusCode": status, "message": message, **extra}


class SandboxHTTPError(Exception):
    """An HTTP error answer of the sandbox in GHL's shape; raise it from a route to answer with it.

    :param status: the HTTP status.
    :param message: one message, or the list of validator messages of a 422.
    :param extra: further body fields (``meta``, ``error``, ...).
    """

    # GHL's API routes put a fresh traceId on every error; its OAuth endpoints do not (see AuthFailure).
    traced = True

    def __init__(self, status: int, message: str | list[str], **extra: Any) -> None:
        super().__init__(message)
        if status == 422:
            # GHL's validator answers always name the error; callers need not repeat it.
            extra.setdefault("error", UNPROCESSABLE)
        self.status = status
        self.body = error_body(status, message, **extra)


class AipError(SandboxHTTPError):
    """An error of GHL's newer v3 routes, in the AIP envelope oauth-v3.json declares (``AipErrorResponseDto``):
    ``{"error": {"code", "message", "details"?}}``.

    :param status: the HTTP status.
    :param code: the machine-readable code (``INVALID_ARGUMENT``, ``RESOURCE_NOT_FOUND``...).
    :param message: the human-readable message.
    :param details: further context (the field, the identifier).
    """

    traced = False

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(status, message)
        error: dict[str, Any] = {"code": code, "message": message}
        if details:
            error["details"] = details
        self.body = {"error": error}


def validation_messages(exc: RequestValidationError) -> list[str]:
    """class-validator style messages for pydantic's errors ("property x should not exist", ...)."""
    messages = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        name = ".".join(loc) or "body"
        kind = err.get("type", "")
        if kind == "extra_forbidden":
            messages.append(f"property {name} should not exist")
        elif kind == "missing":
            messages.append(f"{name} should not be empty")
        else:
            messages.append(f"{name}: {err.get('msg', 'is invalid')}")
    return messages


def install_error_handlers(app: FastAPI) -> None:
    """Answer :class:`SandboxHTTPError` and request validation errors in GHL's shape.

    :param app: the FastAPI app of the sandbox.
    """

    @app.exception_handler(SandboxHTTPError)
    async def sandbox_http_error(request: Request, exc: SandboxHTTPError) -> JSONResponse:
        body = {**exc.body, "traceId": str(uuid.uuid4())} if exc.traced else exc.body
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(422, validation_messages(exc), error=UNPROCESSABLE), status_code=422)
