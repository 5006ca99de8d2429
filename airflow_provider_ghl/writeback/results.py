"""Where a write-back reports: a result per input row, the failed rows as they came, a checkpoint, a manifest.

Layout under ``results_path`` (any Airflow object-storage URI), through the export's
:class:`~airflow_provider_ghl.outputs.directory.OutputDirectory`::

    results-00001.jsonl        one JSON object per input row, in row order: row, action, contact id, changed, error
    dead_letter-00001.csv      the rejected and failed rows of those rows, exactly as they came (CSV: with the
                               header), to fix and feed again; ``.jsonl`` for JSON Lines input, ``.gz`` for gzip
    _checkpoint.json           the last row committed, the files and counts so far: a retried task resumes there
    _manifest.json             written last: counts, files, failed ratio

Rows finish in any order on the pool; they are committed in row order, ``rows_per_file`` at a time, each commit
publishing its files whole and then the checkpoint. A killed task loses at most the rows since the last commit,
and applying those again writes only what GHL still lacks.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Mapping
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.outputs.directory import Checkpoint, OutputDirectory
from airflow_provider_ghl.writeback.engine import ACTIONS, RowResult
from airflow_provider_ghl.writeback.rows import InputFile, InputRow

RESULTS = "results"
DEAD_LETTER = "dead_letter"


class WriteBackResults:
    """The ``results_path`` directory of one write-back run.

    :param root: the directory.
    :param input_file: the input (its format and CSV header shape the dead-letter files).
    :param rows_per_file: rows per results file: how often progress is committed.
    :param identity: what this run applies (input, location, options); a checkpoint of anything else is refused.
    """

    def __init__(
        self, root: ObjectStoragePath, input_file: InputFile, *, rows_per_file: int, identity: Mapping[str, Any]
    ) -> None:
        self.output = OutputDirectory(root, fmt="jsonl")
        self.input = input_file
        self.rows_per_file = rows_per_file
        self.identity = dict(identity)
        self.results = Checkpoint()
        self.dead_letters = Checkpoint()
        self.actions: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.resumed_from_row = 0
        self._next_row = 1
        self._waiting: dict[int, tuple[InputRow, RowResult]] = {}
        self._batch: list[tuple[InputRow, RowResult]] = []

    @property
    def root(self) -> ObjectStoragePath:
        return self.output.root

    def read_manifest(self) -> dict[str, Any] | None:
        return self.output.read_manifest()

    def resume(self) -> int:
        """Restore an earlier attempt's progress and drop what it did not commit; the last committed row."""
        try:
            checkpoints = self.output.read_checkpoints(self.identity)
        except GHLConfigError:
            raise GHLConfigError(
                f"results_path {str(self.root)!r} holds an unfinished run of something else; this run is "
                f"{self.identity}. Use another results_path or delete that directory."
            ) from None
        self.results = checkpoints.get(RESULTS, Checkpoint())
        self.dead_letters = checkpoints.get(DEAD_LETTER, Checkpoint())
        self.output.discard_unpublished({RESULTS: self.results})
        committed = {p.name for p in self.dead_letters.parts}
        if self.root.exists():
            for child in self.root.iterdir():
                name = child.name.removeprefix(".")
                if name.startswith(f"{DEAD_LETTER}-") and child.name not in committed:
                    child.unlink()
        self.actions = Counter(self.results.extra.get("actions", {}))
        self.writes = Counter(self.results.extra.get("writes", {}))
        self.resumed_from_row = int(self.results.cursor[0]) if self.results.cursor else 0
        self._next_row = self.resumed_from_row + 1
        return self.resumed_from_row

    def add(self, row: InputRow, result: RowResult) -> None:
        """Take a finished row (any order); commit once ``rows_per_file`` consecutive rows are in."""
        self._waiting[row.number] = (row, result)
        while self._next_row in self._waiting:
            self._batch.append(self._waiting.pop(self._next_row))
            self._next_row += 1
        if len(self._batch) >= self.rows_per_file:
            self.commit()

    def commit(self) -> None:
        """Publish the consecutive finished rows (results file, dead-letter file) and checkpoint after them."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        part = self.output.open_part(RESULTS, len(self.results.parts) + 1)
        try:
            for _, result in batch:
                part.write(result.as_json())
        except BaseException:
            part.abort()
            raise
        failed = [row.raw for row, result in batch if result.failed]
        if failed:
            self.dead_letters.parts.append(
                self.output.publish_file(self._dead_letter_name(), self._dead_letter_bytes(failed), len(failed))
            )
        self.results.parts.append(part.publish())
        for _, result in batch:
            self.actions[result.action] += 1
            self.writes.update(result.writes)
        self.results.cursor = [batch[-1][0].number]
        self.results.extra = {"actions": dict(self.actions), "writes": dict(self.writes)}
        self.output.write_checkpoints({RESULTS: self.results, DEAD_LETTER: self.dead_letters}, self.identity)

    def _dead_letter_name(self) -> str:
        suffix = f".{self.input.fmt}" + (".gz" if self.input.gzipped else "")
        return f"{DEAD_LETTER}-{len(self.dead_letters.parts) + 1:05d}{suffix}"

    def _dead_letter_bytes(self, rows: list[bytes]) -> bytes:
        data = self.input.header + b"".join(rows)  # the header is empty for JSON Lines
        return gzip.compress(data, compresslevel=6) if self.input.gzipped else data

    def counts(self) -> dict[str, int]:
        """Rows per action, failed rows and writes so far (the XCom)."""
        counts = {"rows": sum(self.actions.values()), **{action: self.actions[action] for action in ACTIONS}}
        counts["failed"] = counts["reject"] + counts["error"]
        counts["writes"] = sum(self.writes.values())
        return counts

    def publish(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """Commit what is left and write the manifest (the commit marker of the run); return the manifest."""
        self.commit()
        counts = self.counts()
        manifest = {
            **facts,
            "counts": counts,
            "failed_ratio": round(counts["failed"] / counts["rows"], 6) if counts["rows"] else 0.0,
            "writes": dict(sorted(self.writes.items())),
            "results": [p.name for p in self.results.parts],
            "dead_letter": [p.name for p in self.dead_letters.parts],
            "resumed_from_row": self.resumed_from_row,
        }
        self.output.write_manifest(manifest)
        return manifest
