"""A local HTTP server that behaves like the HighLevel (GHL) Contacts API (``ghl-sandbox``)."""

from __future__ import annotations

from airflow_provider_ghl.sandbox.config import Faults, SandboxConfig, WebhookSettings
from airflow_provider_ghl.sandbox.testing import SandboxError, SandboxServer

__all__ = ["Faults", "SandboxConfig", "SandboxError", "SandboxServer", "WebhookSettings"]
