"""Layers import downward only: the rule ``docs/architecture.md`` states, checked on every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_ghl"

#: Each room's layer; a module may import its own room and lower layers. The engines share a layer and do not
#: import each other.
LAYERS = {
    "deprecation": 0,
    "exceptions": 1,
    "metrics": 1,
    "checks": 2,
    # The alert messages and their notifier: above the exceptions they classify.
    "alerts": 2,
    "hooks": 3,
    "links": 3,
    "outputs": 4,
    "export": 5,
    "writeback": 5,
    "webhooks": 5,
    "triggers": 6,
    "sensors": 7,
    "operators": 8,
    # The status page reads what the operators and engines recorded beside Airflow's own records.
    "status": 9,
    # Deprecated for one release, imported by nothing of the provider: above every layer.
    "layout": 10,
    "locations": 11,
}


def _room(module: str) -> str:
    return module.removeprefix("airflow_provider_ghl.").split(".")[0]


def test_every_import_of_the_package_goes_downward_or_stays_in_its_room() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).with_suffix("")
        if relative.name == "__init__" and len(relative.parts) == 1:
            continue  # the provider info names modules as strings; it imports only __version__'s own module
        room = relative.parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.module.startswith("airflow_provider_ghl."):
                targets = [_room(node.module)]
            elif node.module == "airflow_provider_ghl":  # a room (``metrics``), or the package's ``__version__``
                targets = [alias.name for alias in node.names if alias.name in LAYERS]
            else:
                continue
            for target in targets:
                if target != room and LAYERS[target] >= LAYERS[room]:
                    wrong.append(f"{relative} imports {node.module}.{target}")
    assert not wrong, wrong


def test_every_room_has_a_layer() -> None:
    rooms = {p.relative_to(PACKAGE).with_suffix("").parts[0] for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert rooms == set(LAYERS)
