"""Old import paths that keep working for one release: the module ``__getattr__`` that serves a renamed name from
its new home with a deprecation warning, and the warning a deprecated module gives when it is imported."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from airflow.exceptions import AirflowProviderDeprecationWarning


def warn_moved(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` (a module or a name) is deprecated in favour of ``new``; it goes in the next release.

    :param old: what the user's code named.
    :param new: what to name instead.
    :param stacklevel: whose line the warning points at (default: the importer of the caller's module).
    """
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release of airflow-provider-ghl: use {new}.",
        AirflowProviderDeprecationWarning,
        stacklevel=stacklevel,
    )


def moved_names(module: str, renames: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving each old name of ``module`` from its new home, with a warning.

    :param module: the module's ``__name__``.
    :param renames: old name -> ``"package.module:NewName"``.
    :return: the ``__getattr__`` to assign in the module.
    """

    def __getattr__(name: str) -> Any:
        target = renames.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, new_name = target.split(":")
        warn_moved(f"{module}.{name}", f"{new_module}.{new_name}")
        return getattr(importlib.import_module(new_module), new_name)

    return __getattr__
