"""The GHL sandbox: a FastAPI app that answers like services.leadconnectorhq.com for the Contacts API.

:func:`build_app` puts the pieces together: the state (:mod:`.state`), the error answers (:mod:`.errors`), the
route groups (:mod:`.routes`) and, outermost, the request gate (:mod:`.gate`) every API request passes
before its route: latency, the ``Version`` header, bearer auth, the rate budget and faults.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ghl_sandbox.errors import install_error_handlers
from ghl_sandbox.gate import SandboxASGI
from ghl_sandbox.routes import ROUTERS
from ghl_sandbox.settings import SandboxConfig
from ghl_sandbox.state import Sandbox

__all__ = ["Sandbox", "SandboxASGI", "build_app"]


def build_app(config: SandboxConfig | None = None) -> SandboxASGI:
    """Create the sandbox ASGI app (pass it to uvicorn).

    :param config: start-up settings; the defaults of :class:`SandboxConfig` when not given.
    """
    sandbox = Sandbox(config or SandboxConfig())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The webhook deliveries run in the server's loop, beside the requests, for as long as it serves.
        await sandbox.webhooks.start()
        try:
            yield
        finally:
            await sandbox.webhooks.stop()

    app = FastAPI(
        title="GHL sandbox",
        redirect_slashes=False,
        docs_url="/_sandbox/docs",
        openapi_url="/_sandbox/openapi.json",
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return SandboxASGI(sandbox, app)
