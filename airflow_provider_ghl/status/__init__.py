"""The GHL status page: per location, the provider's recorded state, in the Airflow UI and as JSON."""
