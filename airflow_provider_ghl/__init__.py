"""Apache Airflow provider for the HighLevel (GHL / LeadConnector) Contacts API."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

DISTRIBUTION_NAME = "airflow-provider-ghl"


def get_provider_info() -> dict[str, Any]:
    """Describe this provider to Airflow's ProvidersManager (the ``apache_airflow_provider`` entry point).

    Kept free of Airflow imports: the providers manager calls it while it is still discovering packages.
    """
    from airflow_provider_ghl.webhooks.options import config_section

    return {
        "package-name": DISTRIBUTION_NAME,
        "name": "HighLevel (GHL)",
        "description": "HighLevel (GHL / LeadConnector) CRM Contacts API: hook, operators, sensors and exports.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "HighLevel",
                "external-doc-url": "https://highlevel.stoplight.io/docs/integrations/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "HighLevel", "python-modules": ["airflow_provider_ghl.hooks.ghl"]},
        ],
        "operators": [
            {
                "integration-name": "HighLevel",
                "python-modules": [
                    "airflow_provider_ghl.operators.contacts",
                    "airflow_provider_ghl.operators.tags",
                    "airflow_provider_ghl.operators.tasks",
                    "airflow_provider_ghl.operators.notes",
                    "airflow_provider_ghl.operators.associations",
                    "airflow_provider_ghl.operators.export",
                    "airflow_provider_ghl.operators.enrich",
                    "airflow_provider_ghl.operators.probe",
                    "airflow_provider_ghl.operators.health",
                    "airflow_provider_ghl.operators.token",
                    "airflow_provider_ghl.operators.writeback",
                    "airflow_provider_ghl.operators.webhooks",
                ],
            }
        ],
        "sensors": [{"integration-name": "HighLevel", "python-modules": ["airflow_provider_ghl.sensors.ghl"]}],
        "triggers": [
            {
                "integration-name": "HighLevel",
                "python-modules": [
                    "airflow_provider_ghl.triggers.ghl",
                    "airflow_provider_ghl.triggers.locations",
                    "airflow_provider_ghl.triggers.webhooks",
                ],
            }
        ],
        "extra-links": ["airflow_provider_ghl.links.GHLContactLink"],
        "notifications": ["airflow_provider_ghl.alerts.GHLAlertNotifier"],
        # The webhook receiver: its [ghl_webhooks] section, and the plugin that mounts it on the api-server
        # (loaded through the airflow.plugins entry point; this entry serves lazy_discover_providers=False).
        "config": config_section(),
        "plugins": [
            {"name": "ghl-webhooks", "plugin-class": "airflow_provider_ghl.webhooks.plugin.GHLWebhooksPlugin"},
            {"name": "ghl-status", "plugin-class": "airflow_provider_ghl.status.plugin.GHLStatusPlugin"},
        ],
        "connection-types": [
            {
                "connection-type": "ghl",
                "hook-class-name": "airflow_provider_ghl.hooks.ghl.GHLHook",
                "hook-name": "HighLevel (GHL)",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "API base URL",
                        "login": "OAuth client ID (empty for a Private Integration Token)",
                        "password": "Private Integration Token / OAuth client secret",
                    },
                    "placeholders": {
                        "host": "https://services.leadconnectorhq.com",
                        "login": "OAuth client id (auth_type=oauth only)",
                        "password": "pit-... or the OAuth client secret",
                    },
                },
                "conn-fields": {
                    "auth_type": {
                        "label": "Auth type",
                        "description": "private_token (a Private Integration Token in Password) or oauth.",
                        "schema": {"type": ["string", "null"], "enum": ["private_token", "oauth", None]},
                    },
                    "location_id": {
                        "label": "Location (sub-account) ID",
                        "description": "Default locationId for calls that need one.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "company_id": {
                        "label": "Company (agency) ID",
                        "description": "Needed for agency tokens that mint location tokens.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "marketplace_url": {
                        "label": "Marketplace URL",
                        "description": "Install flow: GHL's authorization page host (white-label: yours).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "scopes": {
                        "label": "App scopes",
                        "description": "Install flow: the scopes to ask for, space-separated (default: all it uses).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "app_id": {
                        "label": "Marketplace app ID",
                        "description": "Agency installs: lets DAGs discover the locations where the app is installed.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "user_type": {
                        "label": "OAuth user type",
                        "description": "Location (sub-account token) or Company (agency token).",
                        "schema": {"type": ["string", "null"], "enum": ["Location", "Company", None]},
                    },
                    "api_version": {
                        "label": "API version header",
                        "description": "Value of the Version header: 2021-07-28 (default) or v3.",
                        "schema": {"type": ["string", "null"], "default": "2021-07-28"},
                    },
                    "refresh_token": {
                        "label": "OAuth refresh token (bootstrap only)",
                        "description": "Used once when the token Variable is empty; rotated tokens live there.",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "token_variable": {
                        "label": "Token Variable key",
                        "description": "Airflow Variable holding the OAuth token set (default ghl_oauth_<conn_id>).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "max_requests": {
                        "label": "Max requests per interval",
                        "description": "Starting burst budget; the X-RateLimit-* headers take over once seen.",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "interval_ms": {
                        "label": "Rate-limit interval (ms)",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "daily_reserve": {
                        "label": "Daily budget reserve",
                        "description": "Stop (GHLDailyBudgetExhausted) when fewer daily requests remain (default 50).",
                        "schema": {"type": ["integer", "null"], "minimum": 0},
                    },
                    "budget_backend": {
                        "label": "Rate budget shared by",
                        "description": "host (default): every process of this machine; redis: every machine, "
                        "through budget_redis_conn_id; process: each process alone.",
                        "schema": {"type": ["string", "null"], "enum": ["host", "redis", "process", None]},
                    },
                    "budget_dir": {
                        "label": "Budget directory (host backend)",
                        "description": "Where the host backend keeps its budget files (default: "
                        "$AIRFLOW_HOME/ghl-budgets). It must be the Airflow user's, writable by no one else.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "budget_redis_conn_id": {
                        "label": "Redis connection (redis backend)",
                        "description": "An Airflow redis connection (apache-airflow-providers-redis).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "timeout": {
                        "label": "Read timeout (s)",
                        "description": "Longest silence while reading; a whole answer must also arrive within "
                        "connect timeout + read timeout.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "schema": {"type": ["integer", "null"], "minimum": 0},
                    },
                    "app_url": {
                        "label": "GHL app URL",
                        "description": "Base of 'GHL contact' links; a white-label domain or app.gohighlevel.com.",
                        "schema": {"type": ["string", "null"], "format": "url"},
                    },
                },
            }
        ],
    }
