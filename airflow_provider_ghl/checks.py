"""The generic checks of operator and sensor arguments, run before the first request or write.

Each raises :class:`~airflow_provider_ghl.exceptions.GHLInputError` naming the argument, so a bad templated value
fails the task at once (no retry) and nothing is sent to GHL or written. The checks of one feature's own
arguments live beside the feature (search: ``hooks/search.py``, request payloads: ``hooks/payloads.py``, the
inbox URL: ``webhooks/inbox.py``, write-back input: ``writeback/rows.py``, output formats: ``outputs/``); they
are built from these. This module imports nothing of the provider but its exceptions.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pendulum
from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.exceptions import GHLInputError

T = TypeVar("T")


#: The longest id accepted; GHL's are about 20 to 40 characters.
MAX_ID_LENGTH = 128


def require_id(field: str, value: Any) -> str:
    """A non-empty id string that can name a URL path segment or a directory and nothing else: printable, no
    whitespace, no ``/`` or ``\\``, not ``.`` or ``..``, at most :data:`MAX_ID_LENGTH` characters."""
    if not isinstance(value, str) or not value.strip():
        raise GHLInputError(field, f"an id is required, got {value!r}")
    value = value.strip()
    if (
        len(value) > MAX_ID_LENGTH
        or value in (".", "..")
        or not value.isprintable()
        or any(c.isspace() or c in "/\\" for c in value)
    ):
        raise GHLInputError(field, f"not a valid id: {value[:MAX_ID_LENGTH]!r}")
    return value


def optional_id(field: str, value: Any) -> str | None:
    """:func:`require_id` for an argument that may be left out (None or empty)."""
    return None if absent(value) else require_id(field, value)


def require_mapping(field: str, value: Any, *, allow_empty: bool = False) -> dict[str, Any]:
    """A JSON object; a JSON string (e.g. a rendered template) is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise GHLInputError(field, "expected a JSON object, got a string that is not JSON") from None
    if not isinstance(value, Mapping):
        raise GHLInputError(field, f"expected a JSON object (dict), got {type(value).__name__}")
    if not value and not allow_empty:
        raise GHLInputError(field, "must not be empty")
    bad = [k for k in value if not isinstance(k, str) or not k]
    if bad:
        raise GHLInputError(field, f"keys must be non-empty strings, got {bad!r}")
    return dict(value)


def require_mapping_list(field: str, value: Any) -> list[dict[str, Any]]:
    """A list of JSON objects (e.g. GHL search filters); a JSON string is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise GHLInputError(field, "expected a list of JSON objects, got a string that is not JSON") from None
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes, Mapping)):
        raise GHLInputError(field, f"expected a list of JSON objects, got {type(value).__name__}")
    return [require_mapping(f"{field}[{i}]", item) for i, item in enumerate(value)]


def require_str_list(field: str, value: Any, *, allow_empty: bool = False) -> list[str]:
    """A list of non-empty strings; one string or a JSON list string is accepted too."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except ValueError:
                raise GHLInputError(field, "expected a list of strings, got a string that is not a JSON list") from None
        else:
            value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise GHLInputError(field, f"expected a list of strings, got {type(value).__name__}")
    items = list(value)
    bad = [v for v in items if not isinstance(v, str) or not v.strip()]
    if bad:
        raise GHLInputError(field, f"every item must be a non-empty string, got {bad[:3]!r}")
    if not items and not allow_empty:
        raise GHLInputError(field, "must not be empty")
    return [v.strip() for v in items]


def require_id_list(field: str, value: Any) -> list[str]:
    """A non-empty list of ids (see :func:`require_id`)."""
    return [require_id(f"{field}[{i}]", v) for i, v in enumerate(require_str_list(field, value))]


def parse_datetime(value: Any) -> datetime | None:
    """An aware datetime from a datetime or an ISO-8601 string, or None when it is neither.

    Naive values are taken as UTC: GHL writes some dates (appointments) as ``2021-07-16 11:00:00``, no zone.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else pendulum.instance(value, tz="UTC")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = pendulum.parse(value.strip(), tz="UTC")
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return None
    return parsed if isinstance(parsed, datetime) else None


def require_datetime(field: str, value: Any) -> datetime:
    """:func:`parse_datetime`, for an argument that must be a date-time."""
    parsed = parse_datetime(value)
    if parsed is None:
        raise GHLInputError(field, f"expected a datetime or an ISO-8601 date-time, got {value!r}")
    return parsed


def optional_datetime(field: str, value: Any) -> datetime | None:
    """:func:`require_datetime` for an argument that may be left out (None or empty)."""
    return None if absent(value) else require_datetime(field, value)


def interval_datetime(field: str, value: Any, context: Mapping[str, Any], bound: str) -> datetime:
    """A date-time that defaults to the run's data-interval ``bound`` (``data_interval_start`` or ``_end``)."""
    if absent(value):
        value = context.get(bound)
        if value is None:
            raise GHLInputError(
                field,
                f"not given, and the run has no data interval ({bound}) to default to: pass {field}, or schedule "
                "with a data-interval timetable such as CronDataIntervalTimetable",
            )
    return require_datetime(field, value)


def require_timedelta(field: str, value: Any) -> timedelta:
    """A duration that is not negative: a timedelta or seconds (a number)."""
    duration = value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            duration = timedelta(seconds=value)
        except (ValueError, OverflowError):  # NaN, or beyond timedelta's range
            raise GHLInputError(field, f"not a usable number of seconds: {value!r}") from None
    if not isinstance(duration, timedelta):
        raise GHLInputError(field, f"expected a timedelta or seconds, got {value!r}")
    if duration < timedelta(0):
        raise GHLInputError(field, f"must not be negative, got {value!r}")
    return duration


def require_positive_duration(field: str, value: Any) -> timedelta:
    """A duration of more than 0 seconds: a timedelta, seconds (a number), or seconds as text (a rendered
    template, e.g. from a Variable).

    :param field: the argument's name, for the error.
    :param value: the argument.
    :return: the duration.
    """
    duration = value
    if isinstance(value, str):
        try:
            duration = float(value)
        except ValueError:
            raise GHLInputError(field, f"expected seconds, got {value!r:.40}") from None
    checked = require_timedelta(field, duration)
    if checked <= timedelta(0):
        raise GHLInputError(field, f"must be more than 0 seconds, got {value!r}")
    return checked


def require_window(since_field: str, since: datetime | None, until_field: str, until: datetime | None) -> None:
    """A half-open ``[since, until)`` window must not be empty; an open end (None) always passes."""
    if since is not None and until is not None and until <= since:
        raise GHLInputError(until_field, f"must be after {since_field} ({since.isoformat()}), got {until.isoformat()}")


def optional_text(field: str, value: Any, *, required: bool = False) -> str | None:
    """Text (None allowed unless ``required``; a required text must not be blank)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise GHLInputError(field, f"expected {'non-empty ' if required else ''}text, got {value!r}")
    return value


def optional_word(field: str, value: Any) -> str | None:
    """Text without whitespace, such as an e-mail address or a phone number; None or empty means not given."""
    if absent(value):
        return None
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise GHLInputError(field, f"expected a string without spaces, got {value!r}")
    return value.strip()


def email_or_phone(
    email: Any, phone: Any, *, fields: tuple[str, str] = ("contact_email", "contact_phone")
) -> tuple[str | None, str | None]:
    """The e-mail and phone of a duplicate lookup (:func:`optional_word`); one is required.

    :param fields: the arguments' names: ``contact_email``/``contact_phone`` of operators and sensors (``email``
        is Airflow's alert address), ``email``/``phone`` of the hook.
    """
    email_field, phone_field = fields
    checked = optional_word(email_field, email), optional_word(phone_field, phone)
    if checked == (None, None):
        raise GHLInputError(email_field, f"{email_field} or {phone_field} is required; both are empty")
    return checked


def require_bool(field: str, value: Any) -> bool:
    """A real boolean (templated "true"/"false" strings are accepted)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise GHLInputError(field, f"expected true or false, got {value!r}")


def require_choice(field: str, value: Any, choices: Sequence[T]) -> T:
    """One of ``choices``."""
    if value not in choices:
        raise GHLInputError(field, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def require_choices(field: str, value: Any, choices: Sequence[str], *, allow_empty: bool = True) -> list[str]:
    """Some of ``choices`` (none is fine unless ``allow_empty`` is false), as a list without repeats in the order
    given (see :func:`require_str_list`; a set is taken in sorted order)."""
    if isinstance(value, (set, frozenset)):
        value = sorted(value, key=str)
    items = list(dict.fromkeys(require_str_list(field, value, allow_empty=allow_empty)))
    unknown = [v for v in items if v not in choices]
    if unknown:
        raise GHLInputError(field, f"unknown {', '.join(map(repr, unknown))}; choose from {', '.join(choices)}")
    return items


def require_int(field: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    """An integer in ``[minimum, maximum]`` (a templated digit string is accepted)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise GHLInputError(field, f"expected an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise GHLInputError(field, f"must be {bound}, got {value}")
    return value


def require_ratio(field: str, value: Any) -> float:
    """A fraction from 0 to 1 (a templated number string is accepted)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise GHLInputError(field, f"expected a number from 0 to 1, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise GHLInputError(field, f"expected a number from 0 to 1, got {value!r}")
    return float(value)


def location_or_default(field: str, value: Any, default: str | None) -> str:
    """A location id (:func:`require_id`), or ``default`` (the connection's) when not given; one is required."""
    location = optional_id(field, value) or default
    if not location:
        raise GHLInputError(field, "not given, and the connection has no location_id")
    return location


def output_location(field: str, value: Any) -> ObjectStoragePath:
    """Where to write: an absolute path or an Airflow object-storage URI (``file://``, ``s3://``...).

    Resolves the filesystem (which fails for an unknown scheme or a missing fsspec backend), and so writes nothing.
    """
    if isinstance(value, ObjectStoragePath):
        path = value
    else:
        if not isinstance(value, str) or not value.strip():
            raise GHLInputError(field, "must be a non-empty URI such as file:///data/ghl or s3://bucket/ghl")
        text = value.strip()
        if "://" not in text and not text.startswith("/"):
            raise GHLInputError(field, f"must be an absolute path or a URI with a scheme, got {value!r}")
        try:
            path = ObjectStoragePath(text)
        except Exception as exc:  # ObjectStoragePath raises ValueError/TypeError/ImportError by backend
            raise GHLInputError(field, f"{value!r} is not a usable storage URI: {exc}") from exc
    try:
        path.fs  # noqa: B018 -- resolving the filesystem is the check
    except Exception as exc:
        raise GHLInputError(field, f"{str(path)!r} is not a usable storage URI: {exc}") from exc
    return trusted_location(field, path)


def local_path(path: ObjectStoragePath) -> str | None:
    """Where ``path`` is on this machine's disk (``file://`` or an absolute path); None for a remote store."""
    from fsspec.implementations.local import LocalFileSystem

    return str(path.path) if isinstance(path.fs, LocalFileSystem) else None


def trusted_location(field: str, path: ObjectStoragePath) -> ObjectStoragePath:
    """``path`` unless it is on this machine in a directory another local user controls.

    The nearest directory of ``path`` that exists (itself, its parent for a file, or the one it would be made
    in) must be this process's user's, or root's and closed to others' writes, or sticky like ``/tmp`` (what is
    made in it stays ours). A directory someone else made first could hold a planted input, manifest or link.
    Remote stores are their bucket policy's business.

    :param field: the argument, named in the error.
    :param path: the location.
    """
    local = local_path(path)
    if local is None:
        return path
    directory = os.path.abspath(local)
    while not os.path.lexists(directory) and directory != os.path.dirname(directory):
        directory = os.path.dirname(directory)
    if not os.path.isdir(directory) or os.path.islink(directory):
        directory = os.path.dirname(directory)
    info = os.stat(directory)
    mine = info.st_uid == os.geteuid()
    closed = info.st_uid == 0 and (not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or info.st_mode & stat.S_ISVTX)
    if not (mine or closed):
        raise GHLInputError(
            field,
            f"{directory!r} belongs to uid {info.st_uid} (mode {stat.filemode(info.st_mode)}), not to this "
            f"process's user (uid {os.geteuid()}): only the Airflow user's directories are trusted",
        )
    return path


def optional_output_location(field: str, value: Any) -> ObjectStoragePath | None:
    """:func:`output_location` for an argument that may be left out (None or empty)."""
    return None if absent(value) else output_location(field, value)


def input_location(field: str, value: Any) -> ObjectStoragePath:
    """An existing file to read: :func:`output_location`, and the file must be there."""
    path = output_location(field, value)
    try:
        is_file = path.is_file()
    except Exception as exc:  # the backend's own error (permissions, network) says more than "missing"
        raise GHLInputError(field, f"{str(path)!r} cannot be read: {exc}") from exc
    if not is_file:
        raise GHLInputError(field, f"{str(path)!r} is not a file")
    return path


def one_output_of(fields: Mapping[str, Any]) -> tuple[str, ObjectStoragePath]:
    """The one of ``fields`` (argument name -> value) that is given, as ``(name, output location)``."""
    given = {name: value for name, value in fields.items() if not absent(value)}
    if len(given) != 1:
        names = " or ".join(fields)
        raise GHLInputError(next(iter(given or fields)), f"give exactly one of {names}, got {len(given)}")
    [(name, value)] = given.items()
    return name, output_location(name, value)


def known_fields(field: str, value: Any, known: Sequence[str], what: str) -> dict[str, Any]:
    """A JSON object (:func:`require_mapping`) holding only ``known`` keys; an unknown one is named with ``what``."""
    fields = require_mapping(field, value)
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise GHLInputError(f"{field}.{unknown[0]}", f"not a {what} field; use {', '.join(known)}")
    return fields


def absent(value: Any) -> bool:
    """Whether an optional argument was left out: templates render a missing one as None or as ``""``."""
    return value is None or (isinstance(value, str) and value == "")
