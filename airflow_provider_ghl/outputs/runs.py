"""Run bookkeeping every writing run shares: its clock and the facts its manifest records of it, whether its output
is already committed, and a committed output read back.

An export, a write-back and a webhook batch each commit an :class:`~airflow_provider_ghl.outputs.directory.
OutputDirectory` by writing its manifest last. What a manifest says of the run that wrote it (when, how long, how
many requests, which versions) is :meth:`RunClock.facts`; whether a directory already holds a finished run, and
of what, is :func:`committed_manifest`; an earlier committed output to compare with is a :class:`CommittedOutput`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl import __version__
from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.outputs.directory import MANIFEST, OutputDirectory, read_json


def utcnow_iso() -> str:
    """Now, in ISO 8601 UTC to the second (``2026-12-07T14:39:19Z``): how manifests write their times."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RunClock:
    """When a run started, for its manifest (wall clock) and its duration (monotonic clock)."""

    started_at: str = field(default_factory=utcnow_iso)
    started: float = field(default_factory=time.monotonic)

    def facts(
        self, *, requests: int, responses_429: int | None = None, api_version: str | None = None
    ) -> dict[str, Any]:
        """What every manifest records of the run that wrote it, as the run ends.

        :param requests: GHL API requests the run sent.
        :param responses_429: of them, answered 429 (None: not counted by this run).
        :param api_version: the connection's GHL API version (None: the run made no request of its own).
        :return: ``started_at``, ``finished_at``, ``duration_seconds``, ``requests``, ``responses_429`` and
            ``api_version`` when given, ``provider_version``.
        """
        facts: dict[str, Any] = {
            "started_at": self.started_at,
            "finished_at": utcnow_iso(),
            "duration_seconds": round(time.monotonic() - self.started, 3),
            "requests": requests,
        }
        if responses_429 is not None:
            facts["responses_429"] = responses_429
        if api_version is not None:
            facts["api_version"] = api_version
        facts["provider_version"] = __version__
        return facts


@dataclass(frozen=True)
class CommittedOutput:
    """An output directory whose manifest was written: a finished run to compare with or to read.

    :param root: the directory.
    :param manifest: its manifest.
    """

    root: ObjectStoragePath
    manifest: Mapping[str, Any]

    @property
    def dataset(self) -> Any:
        """What the manifest calls the output (``contacts`` for a full export, ``enrichment``, ``webhooks``)."""
        return self.manifest.get("dataset")

    @property
    def location_id(self) -> Any:
        """The location the output is of."""
        return self.manifest.get("location_id")

    @property
    def format(self) -> str:
        """The output's file format (``jsonl`` when the manifest predates the field)."""
        return str(self.manifest.get("format") or "jsonl")

    def files(self, dataset: str) -> list[str]:
        """The part files of ``dataset`` (e.g. ``contacts``) in the directory; none when it has no such dataset.

        :param dataset: a dataset of the manifest's ``datasets``.
        """
        return list(self.manifest.get("datasets", {}).get(dataset, {}).get("files", []))

    def records(self, dataset: str) -> int:
        """How many records ``dataset`` holds.

        :param dataset: a dataset of the manifest's ``datasets``.
        """
        return int(self.manifest.get("datasets", {}).get(dataset, {}).get("records", 0))


def read_committed(root: ObjectStoragePath) -> CommittedOutput | None:
    """The output at ``root`` when its manifest is there (it is committed); None otherwise.

    :param root: an output directory.
    """
    manifest = read_json(root / MANIFEST)
    return CommittedOutput(root, manifest) if manifest is not None else None


def committed_manifest(output: OutputDirectory, identity: Mapping[str, Any], *, field: str) -> dict[str, Any] | None:
    """Skip-if-done: the manifest of the finished run in ``output`` when it ran what this run would, else None.

    A manifest is written last, so its presence means the run committed; a run is never repeated over it. A
    finished run of something else in the same place is refused rather than passed off as this run's result.

    :param output: this run's output directory.
    :param identity: what this run writes (the manifest's own fields, e.g. ``dataset`` and ``location_id``).
    :param field: the argument naming the directory, for the error.
    :return: the manifest, or None when the directory holds no finished run.
    :raises GHLConfigError: the directory holds a finished run of something else.
    """
    manifest = output.read_manifest()
    if manifest is None:
        return None
    done = {key: manifest.get(key) for key in identity}
    if done != dict(identity):
        raise GHLConfigError(
            f"{field} {str(output.root)!r} holds a finished run of something else ({done}); this run is "
            f"{dict(identity)}. Use another {field}."
        )
    return manifest
