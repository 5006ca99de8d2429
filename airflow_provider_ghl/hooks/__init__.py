"""Hooks of the HighLevel (GHL) provider; the hook itself is :class:`airflow_provider_ghl.hooks.ghl.GHLHook`."""
