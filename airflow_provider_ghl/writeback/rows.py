"""The input of a write-back: a file of contact records (JSON Lines or CSV, ``.gz`` allowed), read as checked rows.

Each row keeps the text it came as (for the dead-letter file) and is either a :class:`WriteBackRecord` or the reason
it is rejected, so one bad row never stops the others. Records hold GHL's field names:

- JSON Lines: one object per line, e.g. ``{"email": "a@b.co", "firstName": "Ada", "tags": ["vip"],
  "customFields": {"contact.plan": "pro"}, "tasks": [{"title": "Call", "dueDate": "2026-01-05T10:00:00Z"}]}``;
- CSV: a header of the same names; ``tags`` joined with ``|``; one ``customFields.<id or key>`` column per
  custom field; ``tasks``, ``notes``, ``dndSettings`` and ``customFields`` as JSON text. An empty cell is
  "not given".

Fields GHL computes (``dateAdded``, ``locationId``, the lower-case copies...) are ignored, so an export's file
can be fed back as it is.

Every input is bounded: a row over :data:`MAX_ROW_BYTES` is rejected without being held in memory (its dead
letter keeps the first bytes and says why), and so is a row with a text value over :data:`MAX_FIELD_CHARS` (CSV's
own cell limit): a file of hostile rows costs no more memory than one row.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.checks import parse_datetime
from airflow_provider_ghl.exceptions import GHLInputError
from airflow_provider_ghl.hooks.request import iso_utc

#: Contact fields a record may set (the fields of GHL's ``UpdateContactDto`` but tags and custom fields).
TEXT_FIELDS = (
    "firstName", "lastName", "name", "email", "phone", "address1", "city", "state", "postalCode", "website",
    "timezone", "source", "dateOfBirth", "country", "assignedTo",
)  # fmt: skip
BOOL_FIELDS = ("dnd",)
OBJECT_FIELDS = ("dndSettings",)
CONTACT_FIELDS = (*TEXT_FIELDS, *BOOL_FIELDS, *OBJECT_FIELDS)
#: What GHL computes or keeps elsewhere: ignored in the input (an export's records carry them).
IGNORED_FIELDS = frozenset(
    {
        "locationId", "dateAdded", "dateUpdated", "searchAfter", "firstNameLowerCase", "lastNameLowerCase",
        "fullNameLowerCase", "emailLowerCase", "type", "businessId", "companyName", "followers", "additionalEmails",
        "attributionSource", "lastAttributionSource", "customFieldsByKey", "lastActivity", "attachments",
    }
)  # fmt: skip
CUSTOM_FIELD_COLUMN = "customFields."
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: E.164: what GHL stores and matches duplicates on.
PHONE_RE = re.compile(r"^\+[1-9]\d{6,14}$")
_VALUE_KEYS = ("value", "field_value", "fieldValue")


class RowRejected(ValueError):
    """A row that cannot be applied as it is; the message names the field."""


@dataclass(frozen=True)
class CustomFieldValue:
    """One custom field value of a record.

    :param ref: the field's id or key as the record names it (``contact.plan``, ``plan`` or an id).
    :param by: ``id`` or ``key`` when the record said which; ``ref`` when it did not (the dict form).
    :param value: the value to write.
    """

    ref: str
    by: str
    value: Any


@dataclass(frozen=True)
class WriteBackRecord:
    """One checked input record, in GHL's names.

    :param contact_id: the contact's GHL id, when the record has one.
    :param fields: contact fields to set (:data:`CONTACT_FIELDS`).
    :param tags: the record's tags (None: tags not given).
    :param custom_fields: custom field values.
    :param tasks: tasks to create once (``title``, ``dueDate`` as ISO UTC, ``body``, ``completed``, ``assignedTo``).
    :param notes: notes to create once (``body``, ``title``...).
    """

    contact_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] | None = None
    custom_fields: tuple[CustomFieldValue, ...] = ()
    tasks: tuple[dict[str, Any], ...] = ()
    notes: tuple[dict[str, Any], ...] = ()

    @property
    def email(self) -> str | None:
        return self.fields.get("email")

    @property
    def phone(self) -> str | None:
        return self.fields.get("phone")


#: The largest row (a JSON line, or a CSV row's physical lines) read; a contact with its tasks and notes is far
#: smaller.
MAX_ROW_BYTES = 1024 * 1024
#: The longest text value of a record (the csv module's own cell limit, so both formats agree).
MAX_FIELD_CHARS = 131_072
#: How much of an oversized row its dead letter keeps.
OVERSIZED_KEPT = 256


def _cut_row(number: int, head: bytes, problem: str) -> InputRow:
    """A rejected row too large to keep: its dead letter is its first bytes on one line, marked as cut."""
    kept = head[:OVERSIZED_KEPT].replace(b"\n", b" ").replace(b"\r", b" ")
    return InputRow(number, kept + b"...\n", problem=problem)


@dataclass
class InputRow:
    """One data row of the input file.

    :param number: its number among the data rows, from 1 (a CSV header and blank lines are not rows).
    :param raw: the row's text exactly as it came (with its line end), for the dead-letter file.
    :param record: the checked record, or None when the row is rejected.
    :param problem: why it is rejected.
    """

    number: int
    raw: bytes
    record: WriteBackRecord | None = None
    problem: str | None = None


class InputFile:
    """The rows of an input file, read as a stream (constant memory).

    :param path: the file (any Airflow object-storage path).
    :param fmt: ``jsonl`` or ``csv``.
    :param gzipped: whether it is gzip-compressed.
    """

    def __init__(self, path: ObjectStoragePath, fmt: str, gzipped: bool) -> None:
        self.path = path
        self.fmt = fmt
        self.gzipped = gzipped
        #: The CSV header line as it came (the first line of every CSV dead-letter file).
        self.header: bytes = b""

    def sha256(self) -> str:
        """The SHA-256 of the file's bytes as stored: what a plan records and its apply must find again."""
        digest = hashlib.sha256()
        with self.path.open("rb") as raw:
            while chunk := raw.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    def rows(self) -> Iterator[InputRow]:
        with self.path.open("rb") as raw:
            binary: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if self.gzipped else raw  # type: ignore[assignment]
            if self.fmt == "jsonl":
                yield from self._json_rows(binary)
            else:
                yield from self._csv_rows(io.TextIOWrapper(binary, encoding="utf-8-sig", newline=""))

    def check_header(self, field_name: str) -> None:
        """A CSV whose header names no usable column fails here, before any request (every row would be
        rejected for it); :class:`GHLInputError` naming ``field_name`` and the column."""
        if self.fmt != "csv":
            return
        with self.path.open("rb") as raw:
            binary: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if self.gzipped else raw  # type: ignore[assignment]
            try:
                header = next(csv.reader(io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")), None)
            except (UnicodeDecodeError, OSError, csv.Error) as err:
                raise GHLInputError(field_name, f"{self.path.name!r} is not a readable UTF-8 CSV: {err}") from err
        if not header:
            raise GHLInputError(field_name, f"{self.path.name!r} has no header line")
        columns = [c.strip() for c in header]
        known = {*CONTACT_FIELDS, *IGNORED_FIELDS, "id", "tags", "customFields", "tasks", "notes"}
        for column in columns:
            if columns.count(column) > 1:
                raise GHLInputError(field_name, f"column {column!r} appears twice in the header")
            if column not in known and not column.startswith(CUSTOM_FIELD_COLUMN):
                usable = ", ".join([*CONTACT_FIELDS, "id", "tags", "customFields.<id or key>", "tasks", "notes"])
                raise GHLInputError(field_name, f"column {column!r} is not a contact field; use {usable}")

    @staticmethod
    def _json_rows(binary: IO[bytes]) -> Iterator[InputRow]:
        number = 0
        while line := binary.readline(MAX_ROW_BYTES + 1):
            if len(line) > MAX_ROW_BYTES and not line.endswith(b"\n"):
                while (rest := binary.readline(1 << 16)) and not rest.endswith(b"\n"):
                    pass  # the rest of the line, read and dropped a piece at a time
                number += 1
                yield _cut_row(number, line, f"a line over {MAX_ROW_BYTES} bytes: not read")
                continue
            if not line.strip():
                continue
            number += 1
            row = InputRow(number, line if line.endswith(b"\n") else line + b"\n")
            try:
                data = orjson.loads(line)
                if not isinstance(data, dict):
                    raise RowRejected(f"not a JSON object: {type(data).__name__}")
                row.record = parse_record(data)
            except orjson.JSONDecodeError as err:
                row.problem = f"not JSON: {err}"
            except RowRejected as err:
                row.problem = str(err)
            yield row

    def _csv_rows(self, text: IO[str]) -> Iterator[InputRow]:
        # csv.reader pulls one physical line at a time and never reads ahead, so the lines taken since the last
        # row are exactly that row's text (a quoted cell may span lines).
        taken: list[str] = []
        # Characters of the row so far; over MAX_ROW_BYTES the row is dropped (its lines still read, not kept).
        size = [0]

        def lines() -> Iterator[str]:
            while line := text.readline(MAX_ROW_BYTES + 1):
                if len(line) > MAX_ROW_BYTES and not line.endswith("\n"):
                    while (rest := text.readline(1 << 16)) and not rest.endswith("\n"):
                        pass
                    line = "\n"  # the csv reader sees an empty line; the row is rejected below
                    size[0] = MAX_ROW_BYTES + 1
                size[0] += len(line)
                if size[0] <= MAX_ROW_BYTES:
                    taken.append(line)
                yield line

        reader = csv.reader(lines())
        header = next(reader, None)
        if header is None:
            return
        self.header = "".join(taken).encode("utf-8")
        taken.clear()
        size[0] = 0
        columns = [c.strip() for c in header]
        number = 0
        while True:
            try:
                cells = next(reader, None)
            except csv.Error as err:  # a cell over the csv module's limit: that row only
                raw = "".join(taken).encode("utf-8")
                taken.clear()
                size[0] = 0
                number += 1
                yield _cut_row(number, raw, f"not CSV: {err}")
                continue
            if cells is None:
                break
            raw = "".join(taken).encode("utf-8")
            oversized, size[0] = size[0] > MAX_ROW_BYTES, 0
            taken.clear()
            if oversized:
                number += 1
                yield _cut_row(number, raw, f"a row over {MAX_ROW_BYTES} bytes: not read")
                continue
            if not any(c.strip() for c in cells):
                continue
            number += 1
            row = InputRow(number, raw if raw.endswith(b"\n") else raw + b"\n")
            try:
                if len(cells) != len(columns):
                    raise RowRejected(f"{len(cells)} cells for {len(columns)} columns")
                row.record = parse_record(csv_record(columns, cells))
            except RowRejected as err:
                row.problem = str(err)
            yield row
        taken.clear()


def csv_record(columns: list[str], cells: list[str]) -> dict[str, Any]:
    """A CSV row as a record: empty cells dropped, ``customFields.<ref>`` gathered, JSON cells parsed."""
    record: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for column, cell in zip(columns, cells, strict=True):
        if cell == "":
            continue
        if column.startswith(CUSTOM_FIELD_COLUMN):
            custom[column.removeprefix(CUSTOM_FIELD_COLUMN)] = cell
        elif column in ("tasks", "notes", "dndSettings", "customFields"):
            record[column] = _json_cell(column, cell)
        elif column == "tags":
            record[column] = _json_cell(column, cell) if cell.lstrip().startswith("[") else cell.split("|")
        elif column in BOOL_FIELDS:
            record[column] = cell.strip().lower()
        else:
            record[column] = cell
    if custom:
        record["customFields"] = {**_as_mapping(record.get("customFields")), **custom}
    return record


def _json_cell(column: str, cell: str) -> Any:
    try:
        return orjson.loads(cell)
    except orjson.JSONDecodeError:
        raise RowRejected(f"{column}: not JSON: {cell[:40]!r}") from None


def _as_mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def parse_record(data: Mapping[str, Any]) -> WriteBackRecord:
    """Check one record (GHL's field names); :class:`RowRejected` naming the field when it cannot be applied."""
    _bounded(data)
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if value is None or key in IGNORED_FIELDS or key in ("id", "tags", "customFields", "tasks", "notes"):
            continue
        if key not in CONTACT_FIELDS:
            raise RowRejected(f"{key}: not a contact field; use {', '.join(CONTACT_FIELDS)}")
        fields[key] = _field_value(key, value)
    if "email" in fields and not EMAIL_RE.match(fields["email"]):
        raise RowRejected(f"email: not an e-mail address: {fields['email']!r}")
    if "phone" in fields and not PHONE_RE.match(fields["phone"]):
        raise RowRejected(f"phone: not an E.164 number (+ and digits): {fields['phone']!r}")
    return WriteBackRecord(
        contact_id=_contact_id(data.get("id")),
        fields=fields,
        tags=_tags(data.get("tags")),
        custom_fields=_custom_fields(data.get("customFields")),
        tasks=tuple(_task(i, t) for i, t in enumerate(_list("tasks", data.get("tasks")))),
        notes=tuple(_note(i, n) for i, n in enumerate(_list("notes", data.get("notes")))),
    )


def _bounded(value: Any, where: str = "") -> None:
    """:class:`RowRejected` naming the first text value over :data:`MAX_FIELD_CHARS`, at any depth."""
    if isinstance(value, str):
        if len(value) > MAX_FIELD_CHARS:
            raise RowRejected(f"{where or 'value'}: {len(value)} characters, over {MAX_FIELD_CHARS}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _bounded(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _bounded(item, f"{where}[{i}]")


def _field_value(key: str, value: Any) -> Any:
    if key in BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise RowRejected(f"{key}: expected true or false, got {value!r}")
    if key in OBJECT_FIELDS:
        if not isinstance(value, Mapping):
            raise RowRejected(f"{key}: expected a JSON object")
        return dict(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowRejected(f"{key}: expected text, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise RowRejected(f"{key}: blank")
    return text


def _contact_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.strip() or any(c.isspace() or c == "/" for c in value.strip()):
        raise RowRejected(f"id: not a GHL id: {value!r}")
    return value.strip()


def _tags(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise RowRejected("tags: expected a list of strings")
    tags = [t.strip() for t in value if t.strip()]
    return tuple(dict.fromkeys(tags))


def _custom_fields(value: Any) -> tuple[CustomFieldValue, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return tuple(CustomFieldValue(str(ref), "ref", v) for ref, v in value.items() if v is not None and ref)
    if not isinstance(value, list):
        raise RowRejected("customFields: expected an object {id or key: value} or a list of {id|key, value}")
    items = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not (item.get("id") or item.get("key")):
            raise RowRejected(f"customFields[{i}]: needs an 'id' or a 'key'")
        by = "id" if item.get("id") else "key"
        present = [k for k in _VALUE_KEYS if k in item]
        if not present:
            raise RowRejected(f"customFields[{i}]: needs a 'value' (or 'field_value')")
        if item[present[0]] is not None:
            items.append(CustomFieldValue(str(item[by]), by, item[present[0]]))
    return tuple(items)


def _list(name: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise RowRejected(f"{name}: expected a list of JSON objects")
    return value


def _text(where: str, value: Any, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise RowRejected(f"{where}: expected {'non-empty ' if required else ''}text")
    return value


def _task(i: int, task: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(task) - {"title", "dueDate", "body", "completed", "assignedTo"})
    if unknown:
        raise RowRejected(f"tasks[{i}].{unknown[0]}: not a task field")
    due = parse_datetime(task.get("dueDate"))
    if due is None:
        raise RowRejected(f"tasks[{i}].dueDate: expected an ISO-8601 date-time")
    completed = task.get("completed", False)
    if not isinstance(completed, bool):
        raise RowRejected(f"tasks[{i}].completed: expected true or false")
    out: dict[str, Any] = {"title": _text(f"tasks[{i}].title", task.get("title"), required=True)}
    out["dueDate"] = iso_utc(due)
    out["completed"] = completed
    for key in ("body", "assignedTo"):
        if (text := _text(f"tasks[{i}].{key}", task.get(key))) is not None:
            out[key] = text
    return out


def _note(i: int, note: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(note) - {"body", "title", "userId", "color", "pinned"})
    if unknown:
        raise RowRejected(f"notes[{i}].{unknown[0]}: not a note field")
    out: dict[str, Any] = {"body": _text(f"notes[{i}].body", note.get("body"), required=True)}
    for key in ("title", "userId", "color"):
        if (text := _text(f"notes[{i}].{key}", note.get(key))) is not None:
            out[key] = text
    if "pinned" in note:
        if not isinstance(note["pinned"], bool):
            raise RowRejected(f"notes[{i}].pinned: expected true or false")
        out["pinned"] = note["pinned"]
    return out


#: A write-back's input formats, by the file name's ending (before any ``.gz``).
INPUT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def input_file_format(field: str, path: ObjectStoragePath) -> tuple[str, bool]:
    """``(format, gzipped)`` of a write-back's input by its name (:data:`INPUT_FORMATS`, optionally ``.gz``)."""
    name = path.name.lower()
    stem = name.removesuffix(".gz")
    for ending, fmt in INPUT_FORMATS.items():
        if stem.endswith(ending):
            return fmt, name.endswith(".gz")
    raise GHLInputError(field, f"{path.name!r}: name it .jsonl, .ndjson or .csv (optionally .gz)")
