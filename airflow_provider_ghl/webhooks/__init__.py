"""GHL webhooks: the receiver (signed events in, stored durably), the inbox, and what drains it.

Kept free of imports: ``get_provider_info`` reads the ``[ghl_webhooks]`` options from
:mod:`~airflow_provider_ghl.webhooks.options` while Airflow is still discovering providers.
"""
