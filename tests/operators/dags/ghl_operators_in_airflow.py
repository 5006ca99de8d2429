"""DAG run by ``test_operators_in_airflow.py`` with ``dag.test()``: per-endpoint operators chained through
templates and XCom inside real Airflow tasks, each leaving its "GHL contact" link."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_ghl.operators.contacts import GHLCreateContactOperator, GHLDeleteContactOperator
from airflow_provider_ghl.operators.notes import GHLCreateNoteOperator, GHLGetNotesOperator
from airflow_provider_ghl.operators.tags import GHLAddTagsOperator
from airflow_provider_ghl.operators.tasks import GHLCompleteTaskOperator, GHLCreateTaskOperator

CONN_ID = os.environ.get("GHL_TEST_CONN", "ghl_default")
ROOT = os.environ.get("GHL_TEST_OUTPUT", "file:///tmp/ghl-operators-test")
CONTACT = "{{ ti.xcom_pull(task_ids='create_contact')['contact']['id'] }}"

with DAG(
    "ghl_operators_in_airflow",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"email": "airflow-run@example.com", "root": ROOT},
    render_template_as_native_obj=True,
) as dag:
    create = GHLCreateContactOperator(
        task_id="create_contact",
        ghl_conn_id=CONN_ID,
        fields={"firstName": "Run {{ ds }}", "email": "{{ params.email }}", "tags": ["airflow"]},
        if_exists="update",
    )
    tag = GHLAddTagsOperator(task_id="tag", ghl_conn_id=CONN_ID, contact_id=CONTACT, tags=["run-{{ ds_nodash }}"])
    follow_up = GHLCreateTaskOperator(
        task_id="create_task",
        ghl_conn_id=CONN_ID,
        contact_id=CONTACT,
        title="Follow up on {{ ds }}",
        due_date="{{ data_interval_end }}",
    )
    done = GHLCompleteTaskOperator(
        task_id="complete_task",
        ghl_conn_id=CONN_ID,
        contact_id=CONTACT,
        ghl_task_id="{{ ti.xcom_pull(task_ids='create_task')['id'] }}",
    )
    note = GHLCreateNoteOperator(
        task_id="note", ghl_conn_id=CONN_ID, contact_id=CONTACT, body="Seen by {{ dag.dag_id }}"
    )
    notes = GHLGetNotesOperator(
        task_id="notes", ghl_conn_id=CONN_ID, contact_id=CONTACT, output_path="{{ params.root }}/{{ ds }}/notes.jsonl"
    )
    delete = GHLDeleteContactOperator(task_id="delete", ghl_conn_id=CONN_ID, contact_id=CONTACT, missing_ok=True)
    create >> tag >> follow_up >> done >> note >> notes >> delete


if __name__ == "__main__":
    print("DAGRUN_STATE", dag.test().state)
