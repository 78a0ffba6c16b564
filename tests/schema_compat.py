"""Is a later event schema safe for the consumers of an earlier one? (DESIGN.md §4)

All minor versions of one major share a topic. A consumer built for 1.0 reads 1.1 events, and a
consumer built for 1.1 reads the 1.0 events still on the topic or replayed from the DLQ. So a
minor version may only *add optional fields*. Everything a consumer could rely on stays as it
was: which fields exist and which are required, their types, their allowed values and their
bounds. Even a widened enum breaks things: the worker poisons a `status` it does not know.
A change beyond that gets a new major version, a new `schema_version` value and a new file.

The check lives with the tests and not in the worker, because it gates a build and the worker
has no use for it. The worker checks payloads with hand-written code (that is its hot path),
and the wheel does not ship `schemas/`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from order_service.domain.events import SchemaVersion

Schema = dict[str, Any]

# `order.status.v1.json` is 1.0 and `order.status.v1.2.json` is 1.2 (SchemaVersion.file_name).
FILE_NAME = re.compile(
    r"^(?P<family>[a-z]+(?:\.[a-z]+)*)\.v(?P<major>[1-9][0-9]*)(?:\.(?P<minor>[1-9][0-9]*))?\.json$"
)
# Keywords that say nothing about which payloads are valid: a new version may change them.
ANNOTATIONS = frozenset(
    {"$id", "title", "description", "$comment", "examples", "deprecated", "readOnly", "writeOnly"}
)
# The keywords compared one by one below. Any other keyword must not change at all.
UNDERSTOOD = frozenset({"required", "properties", "type", "enum", "const", "items"})
# Keywords whose values are data, not subschemas: `meaning` copies them verbatim.
DATA_KEYWORDS = frozenset({"enum", "const", "examples", "default", "required"})
# Keywords whose values map names (not keywords) to subschemas.
NAME_MAPS = frozenset({"properties", "patternProperties", "definitions", "$defs"})


class BreakKind(StrEnum):
    NEW_REQUIRED = "new_required"  # the old events lack it
    NO_LONGER_REQUIRED = "no_longer_required"  # consumers relied on its presence
    REMOVED_FIELD = "removed_field"
    ADDED_TO_CLOSED_OBJECT = "added_to_closed_object"  # the old schema refused extra fields
    CHANGED_TYPE = "changed_type"
    CHANGED_VALUES = "changed_values"  # an enum or const narrowed, widened or changed
    CHANGED_CONSTRAINT = "changed_constraint"  # a bound, pattern, format, ... changed


@dataclass(frozen=True, slots=True)
class Break:
    path: str  # where in the schema, e.g. "/properties/status"
    kind: BreakKind
    detail: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.kind}: {self.detail}"


def breaking_changes(old: Schema, new: Schema, path: str = "") -> list[Break]:
    """What in `new` would break a consumer of `old`, or one of `new` reading `old`'s events."""
    found: list[Break] = []

    def broken(kind: BreakKind, detail: str, at: str = path) -> None:
        found.append(Break(at, kind, detail))

    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name in sorted(new_required - old_required):
        broken(BreakKind.NEW_REQUIRED, f"{name!r} is required now")
    for name in sorted(old_required - new_required):
        broken(BreakKind.NO_LONGER_REQUIRED, f"{name!r} is no longer required")

    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name in sorted(old_props.keys() - new_props.keys()):
        broken(BreakKind.REMOVED_FIELD, f"{name!r} was removed")
    if old.get("additionalProperties", True) is not True:
        for name in sorted(new_props.keys() - old_props.keys()):
            broken(BreakKind.ADDED_TO_CLOSED_OBJECT, f"{name!r} was added")
    for name in sorted(old_props.keys() & new_props.keys()):
        found += breaking_changes(old_props[name], new_props[name], f"{path}/properties/{name}")

    if _types(old) != _types(new):
        broken(BreakKind.CHANGED_TYPE, f"type {_types(old)} became {_types(new)}")
    old_values, new_values = _allowed_values(old), _allowed_values(new)
    if old_values != new_values:
        broken(BreakKind.CHANGED_VALUES, _values_change(old_values, new_values))

    old_items, new_items = old.get("items"), new.get("items")
    if isinstance(old_items, dict) and isinstance(new_items, dict):
        found += breaking_changes(old_items, new_items, f"{path}/items")
    elif old_items != new_items:
        broken(BreakKind.CHANGED_CONSTRAINT, "'items' changed")

    for keyword in sorted((old.keys() | new.keys()) - ANNOTATIONS - UNDERSTOOD):
        if old.get(keyword) != new.get(keyword):
            broken(
                BreakKind.CHANGED_CONSTRAINT,
                f"{keyword!r} {old.get(keyword)!r} became {new.get(keyword)!r}",
            )
    return found


def _types(schema: Schema) -> set[str] | None:
    """None: no `type`, anything goes."""
    declared = schema.get("type")
    if declared is None:
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _allowed_values(schema: Schema) -> set[str] | None:
    """`const: x` is `enum: [x]`; values compared as canonical JSON (so 1 is not true)."""
    if "const" in schema:
        values = [schema["const"]]
    elif "enum" in schema:
        values = schema["enum"]
    else:
        return None
    return {json.dumps(v, sort_keys=True) for v in values}


def _values_change(old: set[str] | None, new: set[str] | None) -> str:
    if old is not None and new is not None and new < old:
        return f"narrowed: {sorted(old - new)} no longer allowed"
    if old is not None and new is not None and new > old:
        return f"widened: {sorted(new - old)} allowed now"
    return f"allowed values {sorted(old or ['any'])} became {sorted(new or ['any'])}"


def meaning(node: Any) -> Any:
    """The schema without its descriptions: a published version may change nothing else."""
    if isinstance(node, list):
        return [meaning(n) for n in node]
    if not isinstance(node, dict):
        return node
    kept: dict[str, Any] = {}
    for key, value in node.items():
        if key == "description":
            continue
        if key in DATA_KEYWORDS:
            kept[key] = value
        elif key in NAME_MAPS and isinstance(value, dict):
            kept[key] = {name: meaning(sub) for name, sub in value.items()}
        else:
            kept[key] = meaning(value)
    return kept


def fingerprint(schema: Schema) -> str:
    canonical = json.dumps(meaning(schema), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def version_of(file_name: str) -> SchemaVersion:
    match = FILE_NAME.match(file_name)
    if match is None:
        raise ValueError(f"{file_name}: not <family>.v<major>[.<minor>].json (1.0 is .v1.json)")
    return SchemaVersion(match["family"], int(match["major"]), int(match["minor"] or 0))


def load_schemas(directory: Path) -> dict[SchemaVersion, Schema]:
    """Every schema in `directory` by version; a file not named by its version is an error."""
    return {
        version_of(path.name): json.loads(path.read_text())
        for path in sorted(directory.glob("*.json"))
    }


def newest(schemas: dict[SchemaVersion, Schema], family: str) -> SchemaVersion:
    return max((v for v in schemas if v.family == family), key=lambda v: (v.major, v.minor))


def incompatibilities(
    schemas: dict[SchemaVersion, Schema],
) -> Iterator[tuple[SchemaVersion, SchemaVersion, Break]]:
    """Each version against every earlier version of its family and major (not just the last
    one), yielding (earlier, later, break). A new major may break anything."""
    for new in schemas:
        for old in schemas:
            if (old.family, old.major) == (new.family, new.major) and old.minor < new.minor:
                for found in breaking_changes(schemas[old], schemas[new]):
                    yield old, new, found
