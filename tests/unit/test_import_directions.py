"""Imports run one way (STYLE.md habit 15), read from the source with `ast`, not by convention.

HTTP → domain → persistence, messaging beside persistence and above it; the entry points
(`cli`, `bootstrap`, `__main__`) build everything and nothing imports them back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import order_service

PACKAGE = Path(order_service.__file__).parent
ENTRY_POINTS = frozenset({"cli", "bootstrap", "__main__"})

# package → the packages of ours it must never import (anything imported inside a function too)
FORBIDDEN: dict[str, frozenset[str]] = {
    # the domain imports nothing of ours but itself: checked as "everything else"
    "persistence": frozenset({"messaging", "api", "service", "devstack", "loadtest"})
    | ENTRY_POINTS,
    "api": ENTRY_POINTS,
    "messaging": frozenset({"api", "devstack", "loadtest"}) | ENTRY_POINTS,
}


def _layer_of(module: str) -> str:
    """`order_service.persistence.tables` → `persistence`; `order_service.cli` → `cli`."""
    return module.split(".")[1] if module.count(".") else ""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(source: str, module: str, *, is_package: bool) -> list[tuple[int, str]]:
    """Every `order_service.*` module `source` imports, with its line; relative imports resolved
    against `module` (a package's `__init__` resolves against itself)."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from order_service import cli` (or `from ... import cli`) imports the module
            # `cli`; below the top package the module imported from names the layer already.
            if target == "order_service":
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name.startswith("order_service.")]


def imports_of(path: Path) -> list[tuple[int, str]]:
    return imports_in(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")


def violations() -> list[str]:
    wrong: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer_of(_module_name(path))
        for line, module in imports_of(path):
            target = _layer_of(module)
            if target == layer:
                continue
            if layer == "domain" or target in FORBIDDEN.get(layer, frozenset()):
                where = path.relative_to(PACKAGE.parent)
                wrong.append(f"{where}:{line} ({layer}) imports {module}")
    return wrong


def test_every_import_runs_down_the_layers() -> None:
    """Catches: the outbox row's shape imported by persistence from messaging/envelope.py,
    api/app.py importing bootstrap, a domain module importing SQL or Kafka code of ours — seen
    failing on the tree before issue 19's moves with the four imports it named:
    persistence/order_batch.py, order_cancel.py, order_settlement.py → messaging.envelope and
    api/app.py → bootstrap."""
    wrong = violations()
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_check_reads_every_layer_and_resolves_relative_imports() -> None:
    """Catches a check that passes by reading nothing: each layer it rules has modules, the
    allowed imports are seen, and relative imports are resolved to the layer they reach."""
    layers = {_layer_of(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert {"domain", "persistence", "api", "messaging", "cli", "bootstrap"} <= layers
    edges = {
        (_layer_of(_module_name(p)), _layer_of(m))
        for p in PACKAGE.rglob("*.py")
        for _, m in imports_of(p)
    }
    assert {("persistence", "domain"), ("api", "persistence"), ("bootstrap", "api")} <= edges
    source = "from ...messaging.envelope import event_message\nfrom ... import bootstrap\n"
    found = imports_in(source, "order_service.persistence.sub.rows", is_package=False)
    assert (1, "order_service.messaging.envelope") in found
    assert (2, "order_service.bootstrap") in found
    assert _layer_of("order_service.bootstrap") == "bootstrap"
