"""The hook of the HighLevel (GHL) provider, :class:`airflow_provider_ghl.hooks.ghl.GHLHook`, and the request
machinery behind it, a module per concern (see ``docs/architecture.md``)."""
