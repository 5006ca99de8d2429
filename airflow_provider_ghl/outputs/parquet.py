"""Typed Parquet part files: a schema stable across runs, built from the record kind and the custom fields.

Needs pyarrow (``airflow-provider-ghl[parquet]``); only this module imports it, and only when a Parquet
output is written (``file_format`` refuses the format up front when pyarrow is missing).

A contact becomes its standard fields with their types (``dateAdded`` a UTC timestamp, ``tags`` a list of
strings, ``dndSettings`` a struct per channel), one column per custom field named by its ``fieldKey`` and
typed from its ``dataType``, and the raw ``customFields`` (JSON text) holding every value as GHL sent it. A
value that does not fit its column is written as null there, kept in the raw column, and counted per column
(``type_mismatches``) rather than dropped or fatal. Fields of the record the schema does not name are kept as
JSON text in ``_extra``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import orjson

from airflow_provider_ghl.outputs.directory import PartInfo, PartWriter, open_private

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_ghl.outputs.directory import OutputDirectory

#: Rows gathered before one Parquet row group is written.
ROW_GROUP_ROWS = 5_000
RAW_CUSTOM_FIELDS = "customFields"
EXTRA = "_extra"


class Mismatch(ValueError):
    """A value that does not fit its column's type."""


# -- value converters: a value as GHL sent it -> the column's Python value, or Mismatch ------------------------
def to_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise Mismatch(value)


def to_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Mismatch(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Mismatch(value) from None
    if math.isnan(number) or math.isinf(number):
        raise Mismatch(value)
    return number


def to_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Mismatch(value)


def to_timestamp(value: Any) -> datetime | None:
    """ISO 8601 text (a date alone is its midnight, no zone is UTC) or epoch milliseconds -> aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC)
    if not isinstance(value, str):
        raise Mismatch(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Mismatch(value) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_text_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or any(isinstance(v, dict | list) for v in value):
        raise Mismatch(value)
    return ["" if v is None else str(v) for v in value]


def to_files(value: Any) -> list[dict[str, Any]] | None:
    """GHL's file map ``{id: {url, meta: {originalname}}}`` or a list of such objects -> ``[{id, url, name}]``."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        items = [{**(v if isinstance(v, dict) else {"url": v}), "id": k} for k, v in value.items()]
    elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
        items = value
    else:
        raise Mismatch(value)
    files = []
    for item in items:
        meta = item["meta"] if isinstance(item.get("meta"), dict) else {}
        name = item.get("name") or meta.get("originalname")
        files.append({"id": to_text(item.get("id")), "url": to_text(item.get("url")), "name": to_text(name)})
    return files


def to_json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")


def to_dnd_settings(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Mismatch(value)
    settings = {}
    for channel in DND_CHANNELS:
        entry = value.get(channel)
        if entry is not None and not isinstance(entry, dict):
            raise Mismatch(value)
        settings[channel] = None if entry is None else {k: to_text(entry.get(k)) for k in ("status", "message", "code")}
    return settings


# -- types ----------------------------------------------------------------------------------------------------
def _types() -> dict[str, Any]:
    import pyarrow as pa

    status = pa.struct([("status", pa.string()), ("message", pa.string()), ("code", pa.string())])
    return {
        "text": (pa.string(), to_text),
        "float": (pa.float64(), to_float),
        "bool": (pa.bool_(), to_bool),
        "timestamp": (pa.timestamp("ms", tz="UTC"), to_timestamp),
        "text_list": (pa.list_(pa.string()), to_text_list),
        "files": (pa.list_(pa.struct([("id", pa.string()), ("url", pa.string()), ("name", pa.string())])), to_files),
        "json": (pa.string(), to_json_text),
        "dnd_settings": (pa.struct([(ch, status) for ch in DND_CHANNELS]), to_dnd_settings),
    }


#: A custom field's ``dataType`` -> its column kind (anything else, e.g. TEXT, RADIO, PHONE: text).
CUSTOM_FIELD_KINDS = {
    "NUMERICAL": "float",
    "FLOAT": "float",
    "MONETORY": "float",
    "DATE": "timestamp",
    "CHECKBOX": "text_list",
    "MULTIPLE_OPTIONS": "text_list",
    "TEXTBOX_LIST": "text_list",
    "FILE_UPLOAD": "files",
    "SIGNATURE": "files",
}

_CONTACT_TEXT = (
    "id", "locationId", "name", "firstName", "lastName", "firstNameLowerCase", "lastNameLowerCase",
    "fullNameLowerCase", "email", "emailLowerCase", "phone", "companyName", "address1", "city", "state",
    "postalCode", "country", "timezone", "website", "type", "source", "assignedTo", "businessId",
)  # fmt: skip
#: The standard contact fields and their column kinds.
CONTACT_FIELDS: dict[str, str] = {
    **dict.fromkeys(_CONTACT_TEXT, "text"),
    "dnd": "bool",
    "dndSettings": "dnd_settings",
    "tags": "text_list",
    "followers": "text_list",
    "additionalEmails": "text_list",
    "dateOfBirth": "timestamp",
    "dateAdded": "timestamp",
    "dateUpdated": "timestamp",
    "attributionSource": "json",
    "lastAttributionSource": "json",
    "searchAfter": "json",
}
#: The children's fields (anything else goes to ``_extra``).
CHILD_FIELDS: dict[str, dict[str, str]] = {
    "tasks": {
        **dict.fromkeys(("id", "contactId", "title", "body", "assignedTo"), "text"),
        "dueDate": "timestamp",
        "completed": "bool",
    },
    "notes": {
        **dict.fromkeys(("id", "contactId", "body", "userId", "title", "color"), "text"),
        "dateAdded": "timestamp",
        "pinned": "bool",
    },
    "appointments": {
        **dict.fromkeys(
            (
                *("id", "contactId", "calendarId", "locationId", "title", "status", "appointmentStatus"),
                *("assignedUserId", "address", "groupId", "notes"),
            ),
            "text",
        ),
        **dict.fromkeys(("startTime", "endTime", "dateAdded", "dateUpdated"), "timestamp"),
        "users": "text_list",
        "assignedResources": "text_list",
    },
}
TOMBSTONE_FIELDS = {"id": "text", "locationId": "text", "detectedAt": "timestamp"}


@dataclass(frozen=True)
class ParquetTable:
    """How one dataset's records become Parquet rows.

    :param fields: record field -> column kind (the column has the field's name).
    :param custom_fields: custom field id -> (column name, column kind), read from ``customFields``.
    :param raw_custom_fields: keep ``customFields`` as JSON text (contacts).
    """

    fields: Mapping[str, str]
    custom_fields: Mapping[str, tuple[str, str]]
    raw_custom_fields: bool = False

    @classmethod
    def for_contacts(cls, definitions: Iterable[Mapping[str, Any]]) -> ParquetTable:
        """The contact table of a location, from its custom field definitions (an empty list: no typed
        custom columns; every value is still in the raw ``customFields``)."""
        return cls(CONTACT_FIELDS, custom_field_columns(definitions), raw_custom_fields=True)

    @classmethod
    def for_fields(cls, fields: Mapping[str, str]) -> ParquetTable:
        return cls(fields, {})

    def schema(self) -> pa.Schema:
        import pyarrow as pa

        types = _types()
        columns = [(name, types[kind][0]) for name, kind in self.fields.items()]
        columns += [(name, types[kind][0]) for name, kind in self.custom_fields.values()]
        if self.raw_custom_fields:
            columns.append((RAW_CUSTOM_FIELDS, pa.string()))
        columns.append((EXTRA, pa.string()))
        return pa.schema(columns)

    def converter(self) -> Callable[[Mapping[str, Any], dict[str, int]], dict[str, Any]]:
        """A function turning one record into its row, counting mismatches per column in its second argument."""
        types = _types()
        # Text fields are most of a contact and nearly always already str: copied without a converter call.
        text = [name for name, kind in self.fields.items() if kind == "text"]
        plain = [(name, types[kind][1]) for name, kind in self.fields.items() if kind != "text"]
        custom = {fid: (name, types[kind][1]) for fid, (name, kind) in self.custom_fields.items()}
        known = set(self.fields) | {RAW_CUSTOM_FIELDS, "customFieldsByKey"}
        raw = self.raw_custom_fields

        def convert(record: Mapping[str, Any], mismatches: dict[str, int]) -> dict[str, Any]:
            row: dict[str, Any] = {}
            for name in text:
                value = record.get(name)
                if value is None or value.__class__ is str:
                    row[name] = value
                else:
                    plain_value(row, name, to_text, value, mismatches)
            for name, to_column in plain:
                plain_value(row, name, to_column, record.get(name), mismatches)
            values = record.get(RAW_CUSTOM_FIELDS) or ()
            for item in values if isinstance(values, list) else ():
                column = custom.get(str(item.get("id"))) if isinstance(item, dict) else None
                if column is not None:
                    plain_value(row, column[0], column[1], item.get("value"), mismatches)
            if raw:
                row[RAW_CUSTOM_FIELDS] = to_json_text(record.get(RAW_CUSTOM_FIELDS))
            extra = {k: v for k, v in record.items() if k not in known}
            row[EXTRA] = to_json_text(extra) if extra else None
            return row

        return convert


def plain_value(
    row: dict[str, Any], name: str, to_column: Callable[[Any], Any], value: Any, mismatches: dict[str, int]
) -> None:
    """``row[name]`` is ``value`` converted, or null with the mismatch counted."""
    try:
        row[name] = to_column(value)
    except Mismatch:
        row[name] = None
        mismatches[name] = mismatches.get(name, 0) + 1


def custom_field_columns(definitions: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Custom field id -> (column: its ``fieldKey``, e.g. ``contact.lead_score``; kind from its ``dataType``)."""
    columns = {}
    for definition in definitions:
        name = str(definition.get("fieldKey") or f"contact.{definition['id']}")
        columns[definition["id"]] = (name, CUSTOM_FIELD_KINDS.get(str(definition.get("dataType")), "text"))
    return columns


class ParquetPartWriter(PartWriter):
    """A part written as Parquet row groups of :data:`ROW_GROUP_ROWS`; published whole like every part.

    :param output: the export output.
    :param name: final file name.
    :param table: how the dataset's records become rows.
    """

    def __init__(self, output: OutputDirectory, name: str, table: ParquetTable) -> None:
        import pyarrow.parquet as pq

        self.output = output
        self.name = name
        self.final = output.root / name
        self.tmp = output.root / f".{name}.inprogress"
        self.records = 0
        self.mismatches: dict[str, int] = {}
        self._schema = table.schema()
        self._convert = table.converter()
        self._rows: list[dict[str, Any]] = []
        self._raw: IO[bytes] = open_private(self.tmp)
        self._writer: Any = pq.ParquetWriter(self._raw, self._schema, compression=output.compression or "snappy")

    def write(self, record: Mapping[str, Any]) -> None:
        self._rows.append(self._convert(record, self.mismatches))
        self.records += 1
        if len(self._rows) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows.clear()

    def _close(self) -> None:
        self._flush()
        self._writer.close()
        self._raw.close()

    def publish(self) -> PartInfo:
        info = super().publish()
        info.type_mismatches = dict(self.mismatches)
        return info

    def abort(self) -> None:
        self._rows.clear()
        try:
            self._close()
        finally:
            if self.tmp.exists():
                self.tmp.unlink()


def parquet_ids(path: Any) -> list[str]:
    """The ``id`` column of one Parquet part."""
    import pyarrow.parquet as pq

    with path.open("rb") as fh:
        return [str(v) for v in pq.read_table(fh, columns=["id"]).column("id").to_pylist()]


def parquet_tables(datasets: Sequence[str], definitions: Iterable[Mapping[str, Any]] | None) -> dict[str, ParquetTable]:
    """The table of each dataset of an export (``contacts``, the children, ``deleted``)."""
    tables = {}
    for dataset in datasets:
        if dataset == "contacts":
            tables[dataset] = ParquetTable.for_contacts(definitions or ())
        elif dataset == "deleted":
            tables[dataset] = ParquetTable.for_fields(TOMBSTONE_FIELDS)
        else:
            tables[dataset] = ParquetTable.for_fields(CHILD_FIELDS[dataset])
    return tables
