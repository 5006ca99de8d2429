"""A local HTTP server that behaves like the HighLevel (GHL) Contacts API (``ghl-sandbox``)."""

from __future__ import annotations

from ghl_sandbox.settings import Faults, SandboxConfig, WebhookSubscription
from ghl_sandbox.testing import SandboxError, SandboxServer

__version__ = "0.1.0"

__all__ = ["Faults", "SandboxConfig", "SandboxError", "SandboxServer", "WebhookSubscription", "__version__"]
