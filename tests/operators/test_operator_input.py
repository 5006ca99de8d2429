"""Bad arguments fail every operator before the first request, naming the argument; nothing reaches GHL."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_ghl.exceptions import GHLConfigError, GHLInputError
from airflow_provider_ghl.hooks import search
from airflow_provider_ghl.operators import associations as a
from airflow_provider_ghl.operators import contacts as c
from airflow_provider_ghl.operators import notes as n
from airflow_provider_ghl.operators import tags as t
from airflow_provider_ghl.operators import tasks as k
from airflow_provider_ghl.sensors.ghl import GHLContactChangedSensor, GHLContactExistsSensor, GHLTaskCompletedSensor
from ghl_sandbox.testing import SandboxServer

CID = {"contact_id": "c1"}
TASK = {**CID, "ghl_task_id": "t1"}
NOTE = {**CID, "note_id": "n1"}

#: (operator class, arguments, the argument the error must name)
BAD_INPUT: list[tuple[type, dict[str, Any], str]] = [
    (c.GHLGetContactOperator, {"contact_id": ""}, "contact_id"),
    (c.GHLGetContactOperator, {"contact_id": "a/b"}, "contact_id"),
    (c.GHLGetContactOperator, {**CID, "location_id": "has space"}, "location_id"),
    (c.GHLGetContactOperator, {**CID, "location_id": ".."}, "location_id"),  # it may name a directory
    (c.GHLGetContactOperator, {"contact_id": "a\\b"}, "contact_id"),
    (c.GHLSearchContactsOperator, {"filters": {"field": "tags"}}, "filters"),
    (c.GHLSearchContactsOperator, {"filters": "[1]"}, "filters[0]"),
    (c.GHLSearchContactsOperator, {"since": "yesterday-ish"}, "since"),
    (c.GHLSearchContactsOperator, {"since": "2030-01-02", "until": "2030-01-01"}, "until"),
    (c.GHLSearchContactsOperator, {"page_limit": 501}, "page_limit"),
    (c.GHLSearchContactsOperator, {"date_field": "dateDeleted"}, "date_field"),
    (c.GHLSearchContactsOperator, {"output_path": "relative/dir/file.jsonl"}, "output_path"),
    (c.GHLSearchContactsOperator, {"query": "q" * 76}, "query"),  # GHL refuses it; the sensor's limit too
    (c.GHLSearchContactsOperator, {"query": 42}, "query"),
    (c.GHLCreateContactOperator, {"fields": ["not", "a", "dict"]}, "fields"),
    (c.GHLCreateContactOperator, {"fields": "{not json"}, "fields"),
    (c.GHLCreateContactOperator, {"fields": {"email": "a@b.c"}, "if_exists": "merge"}, "if_exists"),
    (c.GHLCreateContactOperator, {"fields": {"email": "a@b.c", "tags": "[1, 2]"}}, "fields.tags"),
    (c.GHLCreateContactOperator, {"fields": {"customFields": [{"value": 1}]}}, "fields.customFields[0]"),
    (c.GHLCreateContactOperator, {"fields": {"email": "a@b.c", "locationId": "x"}}, "fields.locationId"),
    (c.GHLUpdateContactOperator, {**CID, "fields": {"tags": ["vip"]}}, "fields.tags"),
    (c.GHLUpdateContactOperator, {**CID, "fields": {}}, "fields"),
    (c.GHLUpsertContactOperator, {"fields": {"firstName": "No key"}}, "fields"),
    (c.GHLDeleteContactOperator, {"contact_id": None}, "contact_id"),
    (c.GHLGetDuplicateContactOperator, {}, "contact_email"),
    (c.GHLGetDuplicateContactOperator, {"contact_phone": 15550100}, "contact_phone"),
    (c.GHLGetDuplicateContactOperator, {"contact_email": "ada lovelace@example.com"}, "contact_email"),
    (c.GHLGetDuplicateContactOperator, {"contact_email": "", "contact_phone": "+1 555 0100"}, "contact_phone"),
    (c.GHLGetDuplicateContactOperator, {"contact_email": "  "}, "contact_email"),
    (c.GHLGetContactsByBusinessOperator, {"business_id": " "}, "business_id"),
    (c.GHLGetContactsByBusinessOperator, {"business_id": "b1", "query": "q" * 76}, "query"),
    (c.GHLGetContactOperator, {**CID, "missing_ok": "sometimes"}, "missing_ok"),
    (c.GHLDeleteContactOperator, {**CID, "missing_ok": 1}, "missing_ok"),
    (c.GHLBulkUpdateBusinessOperator, {"contact_ids": [], "business_id": "b1"}, "contact_ids"),
    (c.GHLBulkUpdateBusinessOperator, {"contact_ids": ["ok", ""], "business_id": "b1"}, "contact_ids"),
    (t.GHLAddTagsOperator, {**CID, "tags": []}, "tags"),
    (t.GHLRemoveTagsOperator, {**CID, "tags": [None]}, "tags"),
    (t.GHLBulkUpdateTagsOperator, {"contact_ids": ["c1"], "tags": ["x"], "action": "toggle"}, "action"),
    (t.GHLBulkUpdateTagsOperator, {"contact_ids": ["c1"], "tags": ["x"], "remove_all_tags": True}, "remove_all_tags"),
    (t.GHLBulkUpdateTagsOperator, {"contact_ids": "c 1", "tags": ["x"]}, "contact_ids[0]"),
    (t.GHLBulkUpdateTagsOperator, {"contact_ids": ["c1"], "tags": ["x"], "fail_on_error": "yes"}, "fail_on_error"),
    (k.GHLGetTasksOperator, {"contact_id": ""}, "contact_id"),
    (k.GHLGetTaskOperator, {**CID, "ghl_task_id": ""}, "ghl_task_id"),
    (k.GHLCreateTaskOperator, {**CID, "title": "", "due_date": "2030-01-01"}, "title"),
    (k.GHLCreateTaskOperator, {**CID, "title": "Call", "due_date": "soon"}, "due_date"),
    (k.GHLCreateTaskOperator, {**CID, "title": "Call", "due_date": "2030-01-01", "completed": "yes"}, "completed"),
    (k.GHLUpdateTaskOperator, {**TASK, "fields": {"status": "done"}}, "fields.status"),
    (k.GHLUpdateTaskOperator, {**TASK, "fields": {"dueDate": "never"}}, "fields.dueDate"),
    (k.GHLCompleteTaskOperator, {**TASK, "completed": "maybe"}, "completed"),
    (k.GHLDeleteTaskOperator, {**CID, "ghl_task_id": None}, "ghl_task_id"),
    (k.GHLDeleteTaskOperator, {**TASK, "missing_ok": "perhaps"}, "missing_ok"),
    (n.GHLGetNotesOperator, {"contact_id": "", "output_path": "/tmp/notes.jsonl"}, "contact_id"),
    (n.GHLGetNoteOperator, {**CID, "note_id": ""}, "note_id"),
    (n.GHLCreateNoteOperator, {**CID, "body": "  "}, "body"),
    (n.GHLCreateNoteOperator, {**CID, "body": "hi", "pinned": "often"}, "pinned"),
    (n.GHLUpdateNoteOperator, {**NOTE, "fields": {"text": "x"}}, "fields.text"),
    (n.GHLUpdateNoteOperator, {**NOTE, "fields": {"body": ""}}, "fields.body"),
    (n.GHLDeleteNoteOperator, {**CID, "note_id": "a b"}, "note_id"),
    (n.GHLDeleteNoteOperator, {**NOTE, "missing_ok": "perhaps"}, "missing_ok"),
    (a.GHLGetAppointmentsOperator, {"contact_id": ""}, "contact_id"),
    (a.GHLAddFollowersOperator, {**CID, "followers": []}, "followers"),
    (a.GHLRemoveFollowersOperator, {**CID, "followers": {"u": 1}}, "followers"),
    (a.GHLAddToCampaignOperator, {**CID, "campaign_id": ""}, "campaign_id"),
    (a.GHLRemoveFromCampaignOperator, {**CID, "campaign_id": None}, "campaign_id"),
    (a.GHLRemoveFromAllCampaignsOperator, {"contact_id": " "}, "contact_id"),
    (a.GHLAddToWorkflowOperator, {**CID, "workflow_id": "w1", "event_start_time": "tomorrow"}, "event_start_time"),
    (a.GHLRemoveFromWorkflowOperator, {**CID, "workflow_id": ""}, "workflow_id"),
]


def _operator_classes() -> set[type]:
    found = set()
    for module in (a, c, n, t, k):
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("GHL") and name.endswith("Operator") and obj.__module__ == module.__name__:
                found.add(obj)
    return found


def test_every_operator_has_a_bad_input_case() -> None:
    assert len(_operator_classes()) == 31
    assert _operator_classes() == {cls for cls, _, _ in BAD_INPUT}


@pytest.mark.parametrize(
    ("operator_class", "arguments", "field"),
    BAD_INPUT,
    ids=[f"{cls.__name__}-{field}" for cls, _, field in BAD_INPUT],
)
def test_bad_input_fails_before_any_request(
    operator_class: type, arguments: dict[str, Any], field: str, sandbox: SandboxServer, ghl_conn: str
) -> None:
    sandbox.clear_stats()
    operator = operator_class(task_id="bad", ghl_conn_id=ghl_conn, **arguments)
    with pytest.raises(GHLConfigError) as failure:
        operator.execute({"ti": None})
    assert str(failure.value).startswith(field) or f"{field} " in str(failure.value), failure.value
    if isinstance(failure.value, GHLInputError):
        assert failure.value.field == field
    assert isinstance(failure.value, AirflowFailException)  # no retry can fix an argument
    assert sandbox.stats()["requests_total"] == 0


#: The same argument given to an operator and to a sensor: (argument, operator and its arguments, sensor and its).
SINCE = "2026-01-01T00:00:00Z"
SAME_CHECK: list[tuple[str, tuple[type, dict[str, Any]], tuple[type, dict[str, Any]]]] = [
    ("query", (c.GHLSearchContactsOperator, {"query": "q" * 76}),
     (GHLContactChangedSensor, {"since": SINCE, "query": "q" * 76})),
    ("since", (c.GHLSearchContactsOperator, {"since": "yesterday-ish"}),
     (GHLContactChangedSensor, {"since": "yesterday-ish"})),
    ("until", (c.GHLSearchContactsOperator, {"since": SINCE, "until": SINCE}),
     (GHLContactChangedSensor, {"since": SINCE, "until": SINCE})),
    ("filters[0]", (c.GHLSearchContactsOperator, {"filters": [{"field": "tags"}]}),
     (GHLContactChangedSensor, {"since": SINCE, "filters": [{"field": "tags"}]})),
    ("contact_email", (c.GHLGetDuplicateContactOperator, {"contact_email": "a b@example.com"}),
     (GHLContactExistsSensor, {"contact_email": "a b@example.com"})),
    ("contact_phone", (c.GHLGetDuplicateContactOperator, {"contact_phone": ["+15550100"]}),
     (GHLContactExistsSensor, {"contact_phone": ["+15550100"]})),
    ("contact_email", (c.GHLGetDuplicateContactOperator, {"contact_email": "", "contact_phone": None}),
     (GHLContactExistsSensor, {"contact_email": "", "contact_phone": None})),
    ("location_id", (c.GHLGetContactOperator, {**CID, "location_id": "has space"}),
     (GHLTaskCompletedSensor, {**CID, "location_id": "has space"})),
    ("contact_id", (c.GHLGetContactOperator, {"contact_id": "a/b"}), (GHLTaskCompletedSensor, {"contact_id": "a/b"})),
]  # fmt: skip


@pytest.mark.parametrize(("field", "operator", "sensor"), SAME_CHECK, ids=[case[0] for case in SAME_CHECK])
def test_an_argument_is_judged_the_same_by_operators_and_sensors(
    field: str, operator: tuple[type, dict[str, Any]], sensor: tuple[type, dict[str, Any]],
    sandbox: SandboxServer, ghl_conn: str,
) -> None:  # fmt: skip
    sandbox.clear_stats()
    errors = []
    for cls, arguments, context in ((*operator, {"ti": None}), (*sensor, {"data_interval_start": None})):
        with pytest.raises(GHLInputError) as failure:
            cls(task_id="bad", ghl_conn_id=ghl_conn, **arguments).execute(context)
        errors.append((failure.value.field, str(failure.value)))
    assert errors[0] == errors[1] and errors[0][0] == field
    assert sandbox.stats()["requests_total"] == 0


def test_a_query_of_75_characters_is_sent() -> None:
    assert search.search_query("query", "q" * 75) == "q" * 75
    assert search.search_query("query", "") is None


def test_arguments_users_template_are_rendered_by_airflow_and_then_checked(tmp_path: Any) -> None:
    """The write-back's ``dry_run``/``match_on``/``tags_mode``, the export's ``file_format``/``page_limit`` and the
    webhook apply's ``max_events`` render from the run's context; the checks then judge the rendered values."""
    from airflow_provider_ghl.checks import require_bool, require_choices, require_int
    from airflow_provider_ghl.operators.export import GHLExportContactsOperator
    from airflow_provider_ghl.operators.webhooks import GHLApplyWebhookEventsOperator
    from airflow_provider_ghl.operators.writeback import GHLWriteBackContactsOperator
    from airflow_provider_ghl.writeback.matching import MATCH_KEYS

    context: Any = {
        "params": {"plan": True, "match": '["email", "phone"]', "fmt": "csv", "size": 250, "mode": "replace"}
    }
    write_back = GHLWriteBackContactsOperator(
        task_id="w",
        input_path="{{ params.root }}/in.csv",
        results_path="/tmp/x",
        dry_run="{{ params.plan }}",
        match_on="{{ params.match }}",
        tags_mode="{{ params.mode }}",
    )
    export = GHLExportContactsOperator(
        task_id="e", output_path="/tmp/y", file_format="{{ params.fmt }}", page_limit="{{ params.size }}"
    )
    apply = GHLApplyWebhookEventsOperator(task_id="a", output_path="/tmp/z", max_events="{{ params.size }}")
    for operator in (write_back, export, apply):
        operator.render_template_fields(context)
    assert require_bool("dry_run", write_back.dry_run) is True
    assert require_choices("match_on", write_back.match_on, MATCH_KEYS) == ["email", "phone"]
    assert write_back.tags_mode == "replace"
    assert (export.file_format, require_int("page_limit", export.page_limit, minimum=1)) == ("csv", 250)
    assert require_int("max_events", apply.max_events, minimum=1) == 250
