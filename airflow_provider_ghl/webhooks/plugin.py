"""The Airflow plugin that mounts the webhook receiver on the api-server at ``/ghl`` (``POST /ghl/webhooks``).

Registered through the ``airflow.plugins`` entry point (what Airflow loads by default) and the provider
info's ``plugins`` (read when ``[core] lazy_discover_providers`` is off). Airflow does **not** authenticate
plugin apps: every route here is anonymous, and the GHL signature on each delivery is the authentication.
The settings are read when the api-server loads its plugins; the inbox opens at the first delivery.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_ghl.webhooks.config import WebhookSettings
from airflow_provider_ghl.webhooks.receiver import URL_PREFIX, build_receiver_app


class GHLWebhooksPlugin(AirflowPlugin):
    """``fastapi_apps``: the receiver, mounted at ``/ghl``."""

    name = "ghl-webhooks"
    fastapi_apps = [{"app": build_receiver_app(WebhookSettings.load()), "url_prefix": URL_PREFIX, "name": name}]
