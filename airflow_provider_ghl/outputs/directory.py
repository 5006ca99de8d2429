"""The output directory every writing operator shares: part files published whole, a checkpoint to resume from,
a manifest written last.

Layout under the output directory (any Airflow object-storage URI: ``file://``, ``s3://``, ...)::

    contacts-00001.jsonl[.gz]   data, published by rename once complete
    .contacts-00002.jsonl.inprogress   the part being written (never read by consumers)
    _checkpoint.json            cursor and committed parts, for a retried task to resume from
    _manifest.json              written last: the commit marker; a reader that sees it sees complete data
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import importlib.util
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any

import orjson
from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl import metrics
from airflow_provider_ghl.checks import local_path, require_choice
from airflow_provider_ghl.exceptions import GHLConfigError, GHLInputError

if TYPE_CHECKING:
    from airflow_provider_ghl.outputs.parquet import ParquetTable


MANIFEST = "_manifest.json"
CHECKPOINT = "_checkpoint.json"
FORMATS = ("jsonl", "csv", "parquet")
COMPRESSIONS = (None, "gzip")
#: What makes a spreadsheet read a cell as a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset("".join(FORMULA_STARTS))
#: A plain number: it may start with ``+`` or ``-`` (an E.164 phone, a negative amount) and is no formula.
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
#: Records gathered in memory before one write to the part file (see :class:`PartWriter`).
FLUSH_RECORDS = 500
_ORJSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
_encode_json_stdlib = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def json_line(record: Mapping[str, Any]) -> bytes:
    """One JSON Lines record: compact UTF-8 JSON and a newline.

    orjson encodes a contact about ten times faster than ``json``, which made the writer most of the export's
    client CPU. What orjson refuses (an integer beyond 64 bits) goes through ``json`` instead, so a record
    is never lost to the encoder; both write the same compact, non-ASCII-escaping form.

    :param record: the record (str keys; other keys are written as their text).
    """
    try:
        return orjson.dumps(record, default=str, option=_ORJSON_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        return (_encode_json_stdlib(record) + "\n").encode("utf-8")


def neutralised(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text that starts like a formula gets OWASP's leading ``'``.

    Contact fields come from public forms, so ``=HYPERLINK(...)`` in a name is an attack on whoever opens the
    export. A plain number (``+15550000000``, ``-3.5``) is left as it is, and so is anything that is not text.

    :param value: the cell.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def make_private_dirs(path: ObjectStoragePath) -> None:
    """``path`` and its missing parents as directories; on this machine the ones made here are ``0700`` (outputs
    hold contacts: no other local user reads them)."""
    local = local_path(path)
    if local is None:
        path.mkdir(parents=True, exist_ok=True)
        return
    missing = []
    directory = os.path.abspath(local)
    while not os.path.exists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for name in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another attempt made it meanwhile
            os.mkdir(name, 0o700)


def open_private(path: ObjectStoragePath) -> IO[bytes]:
    """``path`` opened for writing; on this machine readable by the Airflow user alone (``0600``)."""
    handle: IO[bytes] = path.open("wb")
    local = local_path(path)
    if local is not None:
        os.chmod(local, 0o600)  # before a byte is written
    return handle


def read_json(path: ObjectStoragePath) -> dict[str, Any] | None:
    """The JSON object stored at ``path``; None when there is no such file."""
    return json.loads(path.read_text()) if path.exists() else None


@dataclass
class PartInfo:
    """One published data file."""

    name: str
    records: int
    bytes: int
    #: Parquet: values per column that did not fit its type (kept in the raw column).
    type_mismatches: dict[str, int] = field(default_factory=dict)


@dataclass
class Checkpoint:
    """Progress of one dataset (e.g. ``contacts``) that a retried task resumes from."""

    cursor: list[Any] | None = None
    parts: list[PartInfo] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(p.records for p in self.parts)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(
            cursor=data.get("cursor"),
            parts=[PartInfo(**p) for p in data.get("parts", [])],
            extra=dict(data.get("extra", {})),
        )


class OutputDirectory:
    """The output directory of one run (an export, a write-back's results, a webhook batch).

    :param root: the directory (checked with :func:`~airflow_provider_ghl.checks.output_location`).
    :param fmt: ``jsonl``, ``csv`` or ``parquet``.
    :param compression: None or ``gzip`` (for Parquet, the codec inside the file; the default is snappy).
    :param neutralise_formulas: CSV only: text cells that would start a spreadsheet formula get a leading ``'``
        (:func:`neutralised`); False keeps them as they are, for machine consumers. JSON Lines and Parquet keep
        every value as it is.
    """

    def __init__(
        self,
        root: ObjectStoragePath,
        *,
        fmt: str = "jsonl",
        compression: str | None = None,
        neutralise_formulas: bool = True,
    ) -> None:
        self.root = root
        self.fmt = require_choice("format", fmt, FORMATS)
        self.compression = require_choice("compression", compression, COMPRESSIONS)
        self.neutralise_formulas = neutralise_formulas

    @property
    def suffix(self) -> str:
        gzipped = self.compression == "gzip" and self.fmt != "parquet"  # Parquet compresses inside the file
        return f".{self.fmt}" + (".gz" if gzipped else "")

    def part_name(self, dataset: str, number: int) -> str:
        return f"{dataset}-{number:05d}{self.suffix}"

    # -- manifest and checkpoint ----------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any] | None:
        return read_json(self.root / MANIFEST)

    def write_manifest(self, manifest: Mapping[str, Any]) -> ObjectStoragePath:
        """Publish the manifest (temp file, then rename) and drop the checkpoint: the run is committed."""
        path = self.root / MANIFEST
        self._write_atomically(path, json.dumps(manifest, indent=2, default=str).encode())
        checkpoint = self.root / CHECKPOINT
        if checkpoint.exists():
            checkpoint.unlink()
        _count_committed(manifest)
        return path

    def read_checkpoints(self, identity: Mapping[str, Any] | None = None) -> dict[str, Checkpoint]:
        """Progress an earlier attempt committed, if any.

        :param identity: what this run exports (location, window, format...). A checkpoint written for
            anything else is refused rather than continued: resuming it would mix two exports in one place.
        """
        path = self.root / CHECKPOINT
        if not path.exists():
            return {}
        data = json.loads(path.read_text())
        saved = data.get("identity", {})
        if identity is not None and saved != json.loads(json.dumps(dict(identity), default=str)):
            raise GHLConfigError(
                f"output_path {str(self.root)!r} holds an unfinished export of something else ({saved}); "
                f"this run exports {dict(identity)}. Use another output_path or delete that directory."
            )
        return {name: Checkpoint.from_json(cp) for name, cp in data.get("datasets", {}).items()}

    def write_checkpoints(self, checkpoints: Mapping[str, Checkpoint], identity: Mapping[str, Any] | None) -> None:
        body = {"identity": dict(identity or {}), "datasets": {name: asdict(cp) for name, cp in checkpoints.items()}}
        self._write_atomically(self.root / CHECKPOINT, json.dumps(body, default=str).encode())

    def discard_unpublished(self, checkpoints: Mapping[str, Checkpoint]) -> None:
        """Remove our temp files and any part a crashed attempt published after its last checkpoint.

        Only files named like this export's parts are touched: anything else in the directory is left alone.
        """
        if not self.root.exists():
            return
        committed = {p.name for cp in checkpoints.values() for p in cp.parts}
        part = re.compile(rf"^\.?[a-z]+-\d{{5}}{re.escape(self.suffix)}(\.inprogress)?$")
        for child in self.root.iterdir():
            name = child.name
            is_temp = name.startswith(".") and name.endswith(".inprogress")
            if part.match(name) and (is_temp or name not in committed):
                child.unlink()

    def publish_file(self, name: str, data: bytes, records: int) -> PartInfo:
        """Write ``data`` as the file ``name`` of the directory, published whole (temp file, then rename).

        :param name: the file name.
        :param data: its bytes (already encoded, e.g. rows copied as they came).
        :param records: how many records it holds.
        """
        self._write_atomically(self.root / name, data)
        return PartInfo(name, records, len(data))

    def _write_atomically(self, path: ObjectStoragePath, data: bytes) -> None:
        make_private_dirs(self.root)
        tmp = self.root / f".{path.name}.inprogress"
        with open_private(tmp) as fh:
            fh.write(data)
        tmp.rename(path)

    # -- parts ----------------------------------------------------------------------------------------------
    def record_layouts(
        self,
        datasets: Iterable[str],
        csv_columns: Mapping[str, Sequence[str]],
        definitions: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Sequence[str] | ParquetTable | None]:
        """How each dataset's records are laid out in this output's format.

        :param datasets: the datasets (``contacts``, ``tasks``, ``deleted``...).
        :param csv_columns: each dataset's CSV columns.
        :param definitions: the location's custom field definitions (the contacts' Parquet columns).
        """
        if self.fmt == "parquet":
            from airflow_provider_ghl.outputs.parquet import parquet_tables

            return dict(parquet_tables(list(datasets), definitions))
        return {d: csv_columns[d] if self.fmt == "csv" else None for d in datasets}

    def open_part(self, dataset: str, number: int, columns: Sequence[str] | ParquetTable | None = None) -> PartWriter:
        """A writer for part ``number`` of ``dataset``, laid out by ``columns`` (see :meth:`record_layouts`)."""
        make_private_dirs(self.root)
        name = self.part_name(dataset, number)
        if self.fmt == "parquet":
            from airflow_provider_ghl.outputs.parquet import ParquetPartWriter, ParquetTable

            if not isinstance(columns, ParquetTable):
                raise GHLConfigError("parquet output needs its table")
            return ParquetPartWriter(self, name, columns)
        if isinstance(columns, str) or not (columns is None or isinstance(columns, Sequence)):
            raise GHLConfigError(f"{self.fmt} output takes CSV columns or None")
        return PartWriter(self, name, columns)


class PartWriter:
    """Streams records into a temp file; :meth:`publish` renames it to its final name.

    :param output: the export output.
    :param name: final file name.
    :param columns: CSV columns (``csv`` format only); records are flattened to them.
    """

    def __init__(self, output: OutputDirectory, name: str, columns: Sequence[str] | None) -> None:
        if output.fmt == "csv" and not columns:
            raise GHLConfigError("csv output needs its columns")
        self.output = output
        self.name = name
        self.final = output.root / name
        self.tmp = output.root / f".{name}.inprogress"
        self.records = 0
        self._raw: IO[bytes] = open_private(self.tmp)
        self._zip = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6) if output.compression else None
        self._sink: IO[bytes] = self._zip or self._raw  # type: ignore[assignment]
        # Lines are gathered in memory and written FLUSH_RECORDS at a time: every call on the file object goes
        # through Airflow's lineage-tracking wrapper (ObjectStoragePath.open), too slow to pay per record.
        self._lines: list[bytes] = []
        self._csv = None
        self._neutralise = output.neutralise_formulas
        if output.fmt == "csv":
            sink = _LineSink(self._lines)
            self._csv = csv.DictWriter(sink, fieldnames=list(columns or ()), extrasaction="ignore")
            self._csv.writeheader()

    def write(self, record: Mapping[str, Any]) -> None:
        if self._csv is not None:
            self._csv.writerow(flatten(record, neutralise=self._neutralise))
        else:
            self._lines.append(json_line(record))
        self.records += 1
        if self.records % FLUSH_RECORDS == 0:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            self._sink.write(b"".join(self._lines))
            self._lines.clear()

    def write_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.write(record)

    def _close(self) -> None:
        self._flush()
        if self._zip is not None:
            self._zip.close()
        self._raw.close()

    def publish(self) -> PartInfo:
        """Close the temp file and rename it to its final name: readers only ever see whole files."""
        self._close()
        size = self.tmp.stat().st_size
        self.tmp.rename(self.final)
        return PartInfo(self.name, self.records, size)

    def abort(self) -> None:
        self._lines.clear()  # nothing of an aborted part is kept: do not write it first
        try:
            self._close()
        finally:
            if self.tmp.exists():
                self.tmp.unlink()


class _LineSink:
    """What ``csv.writer`` writes to: appends each row, UTF-8 encoded, to the part's pending lines."""

    def __init__(self, lines: list[bytes]) -> None:
        self._lines = lines

    def write(self, row: str) -> None:
        self._lines.append(row.encode("utf-8"))


def flatten(record: Mapping[str, Any], prefix: str = "", *, neutralise: bool = False) -> dict[str, Any]:
    """Nested dicts become ``a.b`` columns; lists of scalars are joined with ``|``; other lists stay JSON.

    :param record: the record.
    :param prefix: the column prefix of a nested record.
    :param neutralise: text cells that would start a spreadsheet formula go through :func:`neutralised` (here,
        in the one pass over the cells: a second pass cost as much as the CSV writer).
    """
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}.", neutralise=neutralise))
            continue
        if isinstance(value, list):
            scalars = all(not isinstance(v, Mapping | list) for v in value)
            value = "|".join("" if v is None else str(v) for v in value) if scalars else json.dumps(value)
        if neutralise and value.__class__ is str and value[:1] in _FORMULA_FIRST:
            value = neutralised(value)
        flat[name] = value
    return flat


def write_records_file(path: ObjectStoragePath, records: Iterable[Mapping[str, Any]]) -> PartInfo:
    """Write ``records`` as JSON Lines to one file (gzip when the name ends in ``.gz``), published whole.

    The file appears under its name only once complete; a failure while ``records`` is consumed (e.g. a GHL
    error mid-walk) leaves no file behind.
    """
    output = OutputDirectory(path.parent, compression="gzip" if path.name.endswith(".gz") else None)
    make_private_dirs(path.parent)
    writer = PartWriter(output, path.name, None)
    try:
        writer.write_many(records)
    except BaseException:
        writer.abort()
        raise
    return writer.publish()


def file_format(field: str, value: Any, formats: Sequence[str]) -> str:
    """One of ``formats``; ``parquet`` only when pyarrow is installed (the ``[parquet]`` extra)."""
    chosen = require_choice(field, value, formats)
    if chosen == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise GHLInputError(
            field, "parquet needs pyarrow, which is not installed: pip install 'airflow-provider-ghl[parquet]'"
        )
    return chosen


#: The write-back actions a results manifest counts, sent as ``ghl.writeback.actions`` by ``outcome``.
WRITEBACK_OUTCOMES = ("create", "update", "skip", "reject", "error")


def _count_committed(manifest: Mapping[str, Any]) -> None:
    """The metrics of a committed output: ``ghl.records`` per dataset, and a write-back's actions."""
    location = manifest.get("location_id")
    datasets = manifest.get("datasets")
    for name, facts in (datasets if isinstance(datasets, Mapping) else {}).items():
        records = facts.get("records") if isinstance(facts, Mapping) else None
        if isinstance(records, int):
            metrics.count("records", records, location_id=location, dataset=name)
    counts = manifest.get("counts")
    if manifest.get("dataset") == "writeback" and not manifest.get("dry_run") and isinstance(counts, Mapping):
        for outcome in WRITEBACK_OUTCOMES:
            if isinstance(counts.get(outcome), int):
                metrics.count("writeback.actions", counts[outcome], location_id=location, outcome=outcome)
