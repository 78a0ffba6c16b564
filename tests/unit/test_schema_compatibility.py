"""The compatibility gate on `schemas/`: every published version is kept and keeps its meaning,
and a later minor version breaks no consumer of an earlier one (tests/schema_compat.py)."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from order_service.domain.events import EVENT_SCHEMA_VERSION
from tests.schema_compat import (
    Break,
    BreakKind,
    Schema,
    breaking_changes,
    fingerprint,
    incompatibilities,
    load_schemas,
    version_of,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

# Every version ever published, and the fingerprint of its meaning (all but its descriptions).
# A version is published by adding its line here. Never change or remove a line: a change
# that is not backward compatible needs a new major version in a new file.
PUBLISHED = {
    "order.created.v1.json": "a88a8f89bfd2d448",
    "order.status.v1.json": "36ad1735434a9d18",
}


def status_v1() -> Schema:
    schema: Schema = json.loads((SCHEMAS / "order.status.v1.json").read_text())
    return schema


def kinds(breaks: list[Break]) -> set[BreakKind]:
    return {b.kind for b in breaks}


def test_every_schema_is_named_by_its_version_and_says_so_inside() -> None:
    """Breaks caught: a file named off the pattern (`order.status.v1.0.json`, which the gate
    would never compare), an `$id` that is not the file's (the `ce_dataschema` of its events),
    a `schema_version` const other than the file's major, a schema draft-07 refuses, and a
    closed top-level object (no later minor could add a field)."""
    for path in sorted(SCHEMAS.iterdir()):
        version = version_of(path.name)
        schema = json.loads(path.read_text())
        assert version.file_name == path.name
        assert schema["$id"] == version.uri, path.name
        assert schema["properties"]["schema_version"]["const"] == version.major, path.name
        assert schema.get("additionalProperties", True) is True, path.name
        jsonschema.Draft7Validator.check_schema(schema)


def test_every_published_version_is_kept_and_keeps_its_meaning() -> None:
    """Breaks caught: a published file deleted, or edited in place beyond its descriptions
    (seen failing on a widened `status` enum in order.created.v1.json, and on a bare v1.1 copy
    not yet listed in PUBLISHED); a change only to a description passes."""
    actual = {p.name: fingerprint(json.loads(p.read_text())) for p in SCHEMAS.glob("*.json")}
    assert actual == PUBLISHED, (
        "schemas/ must keep every published version as it was; publish a new version by adding "
        f"its line to PUBLISHED: {actual}"
    )


def test_each_version_is_compatible_with_every_earlier_one_of_its_major() -> None:
    """The gate on the repo's real schemas. Seen failing on a copied `order.status.v1.1.json`
    whose `quantity` maximum was lowered; the next test runs such a case on a copy of schemas/."""
    found = [
        f"{old.file_name} → {new.file_name}: {b}"
        for old, new, b in incompatibilities(load_schemas(SCHEMAS))
    ]
    assert found == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({"currency": {"type": "string"}}, set(), id="an_optional_field_is_compatible"),
        pytest.param(
            {"currency": {"type": "string"}, "required": ["currency"]},
            {BreakKind.NEW_REQUIRED},
            id="a_new_required_field_breaks",
        ),
    ],
)
def test_the_gate_compares_a_new_minor_file_with_the_published_one(
    tmp_path: Path, change: dict[str, Any], expected: set[BreakKind]
) -> None:
    """The repo's schemas plus a copied and changed `order.status.v1.1.json`, found and paired
    with 1.0 by its file name. Seen failing when the pairing compared only across majors."""
    shutil.copytree(SCHEMAS, tmp_path, dirs_exist_ok=True)
    minor = status_v1()
    minor["$id"] = minor["$id"].replace(".v1.json", ".v1.1.json")
    minor["required"] = [*minor["required"], *change.pop("required", [])]
    minor["properties"].update(change)
    (tmp_path / "order.status.v1.1.json").write_text(json.dumps(minor))

    found = list(incompatibilities(load_schemas(tmp_path)))

    assert {b.kind for _, _, b in found} == expected
    assert all(
        (o.file_name, n.file_name) == ("order.status.v1.json", "order.status.v1.1.json")
        for o, n, _ in found
    )


def test_a_new_major_may_break_anything() -> None:
    """A v2 is not compared with v1: it is a new `schema_version` the v1 worker skips.
    Seen failing when majors were compared too."""
    v1 = status_v1()
    v2 = copy.deepcopy(v1)
    v2["properties"]["quantity"]["type"] = "string"
    schemas = {version_of("order.status.v1.json"): v1, version_of("order.status.v2.json"): v2}
    assert list(incompatibilities(schemas)) == []
    assert EVENT_SCHEMA_VERSION == 1  # the worker reads major 1 only; v2 events are skipped


def test_every_minor_is_compared_with_all_earlier_ones_not_just_the_last() -> None:
    """1.2 drops what 1.1 added: both 1.1 → 1.2 and 1.0 → 1.2 are judged (1.0 → 1.1 is fine)."""
    v10 = status_v1()
    v11 = copy.deepcopy(v10)
    v11["properties"]["currency"] = {"type": "string"}
    v12 = copy.deepcopy(v10)
    v12["properties"]["quantity"]["maximum"] = 100
    schemas = {
        version_of("order.status.v1.json"): v10,
        version_of("order.status.v1.1.json"): v11,
        version_of("order.status.v1.2.json"): v12,
    }
    pairs = {(o.minor, n.minor) for o, n, _ in incompatibilities(schemas)}
    assert pairs == {(0, 2), (1, 2)}


def _set(path: str, value: Any) -> Callable[[Schema], None]:
    def change(schema: Schema) -> None:
        *parents, last = path.split("/")
        node = schema
        for name in parents:
            node = node[name]
        node[last] = value

    return change


def _drop(path: str) -> Callable[[Schema], None]:
    def change(schema: Schema) -> None:
        *parents, last = path.split("/")
        node = schema
        for name in parents:
            node = node[name]
        if isinstance(node, list):
            node.remove(last)
        else:
            del node[last]

    return change


def _both(*changes: Callable[[Schema], None]) -> Callable[[Schema], None]:
    def change(schema: Schema) -> None:
        for one in changes:
            one(schema)

    return change


SHIPPING = {"type": "object", "required": ["country"], "properties": {"country": {}}}

BROKEN_VARIANTS = [
    pytest.param(
        _both(
            _set("properties/currency", {"type": "string"}),
            _set("required", [*status_v1()["required"], "currency"]),
        ),
        {BreakKind.NEW_REQUIRED},
        id="a_new_required_field",
    ),
    pytest.param(
        _both(_drop("properties/rejection_reason"), _drop("required/rejection_reason")),
        {BreakKind.REMOVED_FIELD, BreakKind.NO_LONGER_REQUIRED},
        id="a_removed_field",
    ),
    pytest.param(
        _drop("required/rejection_reason"),
        {BreakKind.NO_LONGER_REQUIRED},
        id="a_field_no_longer_guaranteed",
    ),
    pytest.param(
        _set("properties/quantity/type", "number"), {BreakKind.CHANGED_TYPE}, id="a_changed_type"
    ),
    pytest.param(
        _set("properties/item/type", ["string", "null"]),
        {BreakKind.CHANGED_TYPE},
        id="a_type_widened_to_null",
    ),
    pytest.param(
        _set("properties/status/enum", ["CONFIRMED", "REJECTED"]),
        {BreakKind.CHANGED_VALUES},
        id="a_narrowed_enum",
    ),
    pytest.param(
        _set("properties/status/enum", ["CONFIRMED", "REJECTED", "CANCELLED", "SHIPPED"]),
        {BreakKind.CHANGED_VALUES},
        id="a_widened_enum",
    ),
    pytest.param(
        _set("properties/rejection_reason/enum", ["no_stock", None]),
        {BreakKind.CHANGED_VALUES},
        id="a_changed_enum",
    ),
    pytest.param(
        _set("properties/schema_version/const", True),
        {BreakKind.CHANGED_VALUES},
        id="a_changed_const",
    ),
    pytest.param(
        _set("properties/quantity/maximum", 100_000),
        {BreakKind.CHANGED_CONSTRAINT},
        id="a_changed_bound",
    ),
    pytest.param(
        _drop("properties/id/format"), {BreakKind.CHANGED_CONSTRAINT}, id="a_dropped_format"
    ),
    pytest.param(
        _set("additionalProperties", False),
        {BreakKind.CHANGED_CONSTRAINT},
        id="an_object_closed",
    ),
]


@pytest.mark.parametrize(("change", "expected"), BROKEN_VARIANTS)
def test_the_checker_catches_each_kind_of_break(
    change: Callable[[Schema], None], expected: set[BreakKind]
) -> None:
    """Synthetic later versions of order.status 1.0, each broken in one way."""
    new = status_v1()
    change(new)
    assert kinds(breaking_changes(status_v1(), new)) == expected


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_set("properties/currency", {"type": "string"}), id="an_optional_field"),
        pytest.param(_set("description", "Reworded."), id="a_description"),
        pytest.param(_set("properties/status/description", "Reworded."), id="a_field_description"),
        pytest.param(_set("examples", []), id="the_examples"),
        pytest.param(_set("properties/schema_version", {"enum": [1]}), id="const_as_enum"),
        pytest.param(
            _set("properties/status/enum", ["CANCELLED", "REJECTED", "CONFIRMED"]),
            id="enum_reordered",
        ),
    ],
)
def test_the_checker_lets_compatible_changes_pass(change: Callable[[Schema], None]) -> None:
    new = status_v1()
    change(new)
    assert breaking_changes(status_v1(), new) == []


def test_the_checker_looks_inside_nested_objects() -> None:
    """A 1.1 added an optional `shipping` object; a 1.2 requiring more inside it breaks."""
    v11 = status_v1()
    v11["properties"]["shipping"] = copy.deepcopy(SHIPPING)
    v12 = copy.deepcopy(v11)
    v12["properties"]["shipping"]["required"].append("city")
    v12["properties"]["shipping"]["properties"]["city"] = {"type": "string"}

    (found,) = breaking_changes(v11, v12)

    assert (found.path, found.kind) == ("/properties/shipping", BreakKind.NEW_REQUIRED)


def test_a_field_added_to_a_closed_object_breaks_its_strict_readers() -> None:
    old = copy.deepcopy(SHIPPING)
    old["additionalProperties"] = False
    new = copy.deepcopy(old)
    new["properties"]["city"] = {"type": "string"}
    assert kinds(breaking_changes(old, new)) == {BreakKind.ADDED_TO_CLOSED_OBJECT}


def test_the_fingerprint_ignores_descriptions_only() -> None:
    """So PUBLISHED lets a description be reworded and nothing else, not even a property
    that happens to be called `description`."""
    schema = status_v1()
    reworded = status_v1()
    reworded["description"] = "Reworded."
    reworded["properties"]["item"]["description"] = "Reworded."
    with_field = status_v1()
    with_field["properties"]["description"] = {"type": "string"}
    retitled = status_v1()
    retitled["title"] = "order.status"

    assert fingerprint(reworded) == fingerprint(schema)
    assert fingerprint(with_field) != fingerprint(schema)
    assert fingerprint(retitled) != fingerprint(schema)
