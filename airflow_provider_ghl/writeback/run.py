"""One write-back run: the input's rows through the pool into the results, resuming from the checkpoint."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from airflow_provider_ghl.exceptions import GHLScopeError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.scopes import ScopeDegradations
from airflow_provider_ghl.writeback.engine import RowApplier, apply_rows
from airflow_provider_ghl.writeback.matching import InFileKeys
from airflow_provider_ghl.writeback.results import WriteBackResults
from airflow_provider_ghl.writeback.rows import InputFile, InputRow

log = logging.getLogger(__name__)

#: What a write-back goes without when the token cannot read the custom field definitions.
WITHOUT_DEFINITIONS = "custom-field definitions: values named by key are written as given, without comparing them first"


def custom_field_definitions(
    hook: GHLHook, location_id: str, degradations: ScopeDegradations
) -> list[dict[str, Any]] | None:
    """The location's contact custom-field definitions, or None when the token lacks their scope (warned once,
    recorded for the manifest)."""
    try:
        definitions: list[dict[str, Any]] = hook.get_custom_fields(model="contact", location_id=location_id)
    except GHLScopeError as err:
        degradations.without("get_custom_fields", err, lost=WITHOUT_DEFINITIONS)
        return None
    return definitions


def write_back_rows(
    input_file: InputFile,
    output: WriteBackResults,
    applier: RowApplier,
    *,
    match_on: Sequence[str],
    workers: int,
) -> dict[str, int]:
    """Apply every row after the checkpoint and commit the results; return the counts (nothing is published as
    a manifest here).

    :param input_file: the rows.
    :param output: results, dead letters and checkpoint, already resumed (:meth:`WriteBackResults.resume`).
    :param applier: plans and applies one row.
    :param match_on: the keys rows are matched on (rows sharing one are rejected, the later ones).
    :param workers: rows in flight at once.
    """
    resumed = output.resumed_from_row
    if resumed:
        log.info("Resuming after row %d (committed by an earlier attempt).", resumed)
    keys = InFileKeys(match_on)

    def todo() -> Iterator[InputRow]:
        # Every row is read and claims its keys, the committed ones too: a row's verdict must not depend on
        # where an attempt started.
        for row in input_file.rows():
            keys.claim(row)
            if row.number > resumed:
                yield row

    started = time.monotonic()
    done = 0
    try:
        for row, result in apply_rows(todo(), applier.apply, workers):
            output.add(row, result)
            done += 1
            if done % 1000 == 0:
                rate = done / max(time.monotonic() - started, 1e-9)
                log.info("%d rows applied (%.0f rows/s).", resumed + done, rate)
    finally:
        # What finished is kept, even when the task stops on a failure of its own.
        output.commit()
    return output.counts()
