"""Tests that run Airflow's real components (scheduler, triggerer, dag-processor, api-server)."""
