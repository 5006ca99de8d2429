"""The write-back engine: a file of records applied to GHL contacts, idempotently, under the shared budget.

- :mod:`~airflow_provider_ghl.writeback.rows`: the input file (JSON Lines or CSV, ``.gz``) as checked rows;
- :mod:`~airflow_provider_ghl.writeback.matching`: which existing contact a row is (id, duplicate lookup);
- :mod:`~airflow_provider_ghl.writeback.diff`: what would change (fields, tags, custom fields, children);
- :mod:`~airflow_provider_ghl.writeback.engine`: the bounded pool that plans and applies each row;
- :mod:`~airflow_provider_ghl.writeback.results`: results, dead letters, checkpoint and manifest;
- :mod:`~airflow_provider_ghl.writeback.run`: one run, the rows after the checkpoint through the pool.
"""
