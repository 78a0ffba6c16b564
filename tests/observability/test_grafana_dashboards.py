"""The Grafana dashboards: generated, well-formed, and every query accepted by Prometheus."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.observability.dashboards import DASHBOARDS, load_dashboards, panel_queries, panels
from tests.observability.prometheus_server import DEPLOY, REPO, QueryRejected, running_prometheus
from tests.observability.promql import without_fallbacks

GENERATOR_DIR = DEPLOY / "grafana"
PANEL_TYPES = {"row", "timeseries", "stat"}
EXPECTED_BOARDS = {
    "order-service-red.json",
    "order-service-orders.json",
    "order-service-kafka.json",
    "order-service-postgres.json",
    "order-service-slo.json",
}


@pytest.fixture
def generator(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(GENERATOR_DIR))
    for name in ("generate", "panels", "infra_boards", "orders_board"):
        sys.modules.pop(name, None)
    return importlib.import_module("generate")


def test_committed_dashboards_equal_the_generators_output(generator: ModuleType) -> None:
    rendered: dict[str, Any] = generator.render_all()
    assert set(rendered) == {p.name for p in DASHBOARDS.glob("*.json")}
    for name, board in rendered.items():
        committed = (DASHBOARDS / name).read_text(encoding="utf-8")
        assert committed == generator.serialise(board), f"{name} is stale: run generate.py"


def generated_digest(hash_seed: int) -> str:
    """The generator's five files, hashed, from a fresh interpreter with this hash seed."""
    script = (
        "import hashlib, generate\n"
        "boards = generate.render_all()\n"
        "text = ''.join(name + generate.serialise(boards[name]) for name in sorted(boards))\n"
        "print(hashlib.sha256(text.encode()).hexdigest())"
    )
    env = os.environ | {"PYTHONHASHSEED": str(hash_seed)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=GENERATOR_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_generator_writes_the_same_bytes_in_every_process() -> None:
    """Regenerating must not churn the committed JSON. Seen failing with the dashboard tags
    built from a set (`list({TAG, "orders", "kafka"})`): string hashing, and with it the
    order, changes with PYTHONHASHSEED."""
    digests = {seed: generated_digest(seed) for seed in range(1, 5)}
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in digests.values()), digests
    assert len(set(digests.values())) == 1, digests


def test_the_sdk_targets_the_grafana_release_compose_runs() -> None:
    """grafana-foundation-sdk names the Grafana release its models follow (`<build>!11.3.0`);
    a bump of either the pin or the compose image alone fails here. Seen failing with the
    image set to grafana/grafana:11.6.0."""
    sdk = importlib.metadata.version("grafana-foundation-sdk").split("!")[-1]
    compose = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    image = re.search(r"image: grafana/grafana:(\d+\.\d+)\.\d+", compose)
    assert image, "no grafana/grafana:<x.y.z> image in docker-compose.yml"
    assert sdk.rsplit(".", 1)[0] == image.group(1), (sdk, image.group(0))


def test_the_five_dashboards_exist_with_unique_uids_and_titles() -> None:
    boards = load_dashboards()
    assert set(boards) == EXPECTED_BOARDS
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    assert len({b["title"] for b in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert name == f"{board['uid']}.json"


def test_every_dashboard_has_grafana_structure_and_unique_panel_ids() -> None:
    for name, board in load_dashboards().items():
        assert isinstance(board["schemaVersion"], int), name
        assert board["time"]["from"].startswith("now-"), name
        assert isinstance(board["templating"]["list"], list), name
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels(board):
            assert panel["type"] in PANEL_TYPES, f"{name}: {panel['type']}"
            assert panel["title"], name
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']}"
            assert grid["h"] > 0, f"{name}: {panel['title']}"


def test_panels_do_not_overlap() -> None:
    for name, board in load_dashboards().items():
        cells: set[tuple[int, int]] = set()
        for panel in panels(board):
            g = panel["gridPos"]
            mine = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & mine, f"{name}: {panel['title']} overlaps another panel"
            cells |= mine


def test_every_panel_and_target_uses_the_prometheus_datasource_uid() -> None:
    for name, board in load_dashboards().items():
        for panel in panels(board):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "prometheus", f"{name}: {panel['title']}"
            assert panel["targets"], f"{name}: {panel['title']} has no query"
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), f"{name}: {panel['title']}"
            for tgt in panel["targets"]:
                assert tgt["datasource"]["uid"] == "prometheus", f"{name}: {panel['title']}"


def test_the_red_dashboard_carries_the_seeds_fastapi_http_panel_set() -> None:
    board = load_dashboards()["order-service-red.json"]
    titles = {panel["title"] for panel in panels(board)}
    assert "FastAPI HTTP" in titles
    assert {"Request rate by route and status", "Error ratio", "Requests in progress"} <= titles
    latency = next(p for p in panels(board) if p["title"].startswith("Latency p50 / p90 / p99"))
    assert [t["legendFormat"] for t in latency["targets"]] == [
        "p50 {{route}}",
        "p90 {{route}}",
        "p99 {{route}}",
    ]
    assert all(t["exemplar"] for t in latency["targets"])


@pytest.fixture(scope="module")
def empty_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    config = {"global": {"scrape_interval": "15s"}, "scrape_configs": []}
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), config) as prom:
        yield prom


def test_every_panel_query_is_accepted_by_a_real_prometheus(empty_prometheus: Any) -> None:
    rejected = []
    for query in panel_queries():
        try:
            empty_prometheus.query(query.expr)
        except QueryRejected as exc:
            rejected.append(f"{query}: {exc}")
    assert not rejected, "\n".join(rejected)


def test_no_panel_query_answers_an_empty_prometheus_once_its_fallbacks_are_removed(
    empty_prometheus: Any,
) -> None:
    """What test_dashboards_live.py counts as a panel's own data: with `or vector(0)` removed
    a query over no samples must answer nothing. Catches a constant without_fallbacks does not
    recognise (tried: `or on () (vector(0))`), and one it leaves half removed (the query
    would then be rejected)."""
    answering = [q for q in panel_queries() if empty_prometheus.query(q.expr)]
    assert answering, "no panel has a fallback: the check below would prove nothing"
    constant = [
        f"{q}: {without_fallbacks(q.expr)}"
        for q in panel_queries()
        if empty_prometheus.query(without_fallbacks(q.expr))
    ]
    assert not constant, "answers without any sample:\n" + "\n".join(constant)


def test_a_broken_query_is_rejected_so_the_check_above_can_fail(empty_prometheus: Any) -> None:
    with pytest.raises(QueryRejected):
        empty_prometheus.query("sum by (route (rate(http_requests_total[1m]))")


def test_dashboard_directory_holds_only_generated_json() -> None:
    assert all(p.suffix == ".json" for p in Path(DASHBOARDS).iterdir())
