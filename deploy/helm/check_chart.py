"""Check the order-service chart with the real Helm engine (helm-sdkpy, Python >= 3.12).

For the chart's own values.yaml, values-aws.yaml and every ci/*.yaml:
  1. the coalesced values validate against values.schema.json (jsonschema);
  2. `helm lint` passes with those values (no warning, no error);
  3. `helm install` renders the release: helm-sdkpy has no dry-run/template call, so the install
     runs for real against a throw-away in-process Kubernetes API stand-in on 127.0.0.1 that
     answers discovery, accepts every object and reports hook Jobs complete, with the release
     stored by the `memory` driver. Helm also validates the values against the schema here.
  4. every rendered object validates against the Kubernetes JSON schemas (kubernetes-validate,
     strict: unknown fields fail) of the stand-in's version and of the chart's kubeVersion
     floor. The custom resources (ExternalSecret, ScaledObject, TriggerAuthentication,
     ServiceMonitor, PrometheusRule) have no schema there; they get the structural checks in
     `check_custom_resource` instead.

Usage: .venv-helm/bin/python deploy/helm/check_chart.py [--out DIR]   (exit 0 = all good)
       .venv-helm/bin/python deploy/helm/check_chart.py --sync-rules  (refresh the rules copy)
--out writes the rendered objects of each values file as JSON (DIR/<name>.json) for the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# Release records live in memory, not in Secrets of the stand-in cluster. The Go runtime reads
# the environment the process started with, so set it by re-executing, not by os.environ alone.
if os.environ.get("HELM_DRIVER") != "memory":
    env = {**os.environ, "HELM_DRIVER": "memory"}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)  # noqa: S606

import helm_sdkpy
import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE / "order-service"
REPO = HERE.parent.parent
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
RULES_COPY = CHART / "files" / "alert-rules.yml"
AWS_MANIFESTS = [REPO / "deploy" / "aws" / "adot-collector.yaml"]
KUBE_VERSION = "1.33.0"
# The oldest Kubernetes the chart admits (Chart.yaml kubeVersion): its schemas must pass too.
KUBE_FLOOR = re.sub(
    r"^>=\s*|-0$", "", yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
)
NAMESPACE = "order-service"

# group/version -> [(plural, Kind)] the stand-in API server advertises.
API_GROUPS: dict[str, list[tuple[str, str]]] = {
    "v1": [
        ("configmaps", "ConfigMap"),
        ("secrets", "Secret"),
        ("services", "Service"),
        ("serviceaccounts", "ServiceAccount"),
        ("pods", "Pod"),
    ],
    "apps/v1": [("deployments", "Deployment")],
    "batch/v1": [("jobs", "Job")],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget")],
    "networking.k8s.io/v1": [("ingresses", "Ingress"), ("networkpolicies", "NetworkPolicy")],
    "external-secrets.io/v1": [("externalsecrets", "ExternalSecret")],
    "keda.sh/v1alpha1": [
        ("scaledobjects", "ScaledObject"),
        ("triggerauthentications", "TriggerAuthentication"),
    ],
    "monitoring.coreos.com/v1": [
        ("servicemonitors", "ServiceMonitor"),
        ("prometheusrules", "PrometheusRule"),
    ],
}
CUSTOM_KINDS = {kind for gv, res in API_GROUPS.items() if "." in gv for _, kind in res}


# ----------------------------------------------------------------------------- values
def coalesce(base: Any, override: Any) -> Any:
    """Helm's merge of user values over chart defaults: maps merge, null deletes a key."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = coalesce(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def values_files() -> list[Path]:
    return [CHART / "values.yaml", CHART / "values-aws.yaml", *sorted(CHART.glob("ci/*.yaml"))]


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: not a mapping")
    return data


# ----------------------------------------------------------------------------- rules copy
def concatenated_rule_groups() -> dict[str, Any]:
    groups: list[Any] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        groups.extend((yaml.safe_load(path.read_text()) or {}).get("groups") or [])
    return {"groups": groups}


def sync_rules() -> None:
    header = (
        "# GENERATED copy of deploy/prometheus/rules/*.yml (groups concatenated in file order)\n"
        "# for the chart's PrometheusRule. Refresh: .venv-helm/bin/python "
        "deploy/helm/check_chart.py --sync-rules\n"
    )
    body = yaml.safe_dump(concatenated_rule_groups(), sort_keys=False, width=100)
    RULES_COPY.write_text(header + body)


# ----------------------------------------------------------------------------- fake API server
class _Store:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.lock = threading.Lock()


def _resource_list(group_version: str) -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            {
                "name": plural,
                "singularName": kind.lower(),
                "namespaced": True,
                "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
            for plural, kind in API_GROUPS[group_version]
        ],
    }


def _group_list() -> dict[str, Any]:
    groups = []
    for gv in API_GROUPS:
        if "/" not in gv:
            continue
        group, version = gv.split("/")
        entry = {"groupVersion": gv, "version": version}
        groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _handler(store: _Store) -> type[BaseHTTPRequestHandler]:
    major, minor, _ = KUBE_VERSION.split(".")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _not_found(self) -> None:
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
            self._send(404, {**status, "reason": "NotFound", "code": 404})

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/version":
                return self._send(
                    200, {"major": major, "minor": minor, "gitVersion": "v" + KUBE_VERSION}
                )
            if path == "/api":
                return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
            if path == "/api/v1":
                return self._send(200, _resource_list("v1"))
            if path == "/apis":
                return self._send(200, _group_list())
            if path.startswith("/apis/") and path[6:] in API_GROUPS:
                return self._send(200, _resource_list(path[6:]))
            if path == "/openapi/v2":
                # An empty OpenAPI document: Helm's hook validation then has nothing to check;
                # kubernetes-validate does the real schema check afterwards.
                return self._send(200, b"", "application/octet-stream")
            if "watch=true" in self.path:
                return self._watch(path)
            with store.lock:
                obj = store.objects.get(path)
            return self._send(200, obj) if obj else self._not_found()

        def _watch(self, collection: str) -> None:
            with store.lock:
                items = [o for p, o in store.objects.items() if p.rsplit("/", 1)[0] == collection]
            events = [{"type": "ADDED", "object": o} for o in items]
            events.append(
                {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": items[0]["kind"] if items else "Job",
                        "apiVersion": items[0]["apiVersion"] if items else "batch/v1",
                        "metadata": {
                            "resourceVersion": "2",
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    },
                }
            )
            self._send(200, "".join(json.dumps(e) + "\n" for e in events).encode())

        def do_POST(self) -> None:
            obj = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            meta = obj.setdefault("metadata", {})
            meta.update(uid=f"uid-{len(store.created)}", resourceVersion="1", generation=1)
            meta.setdefault("namespace", NAMESPACE)
            with store.lock:
                store.created.append(copy.deepcopy(obj))
            if obj.get("kind") == "Job":  # hooks wait for this
                obj["status"] = {
                    "succeeded": 1,
                    "conditions": [{"type": "Complete", "status": "True"}],
                }
            with store.lock:
                store.objects[self.path.split("?")[0] + "/" + meta["name"]] = obj
            self._send(201, obj)

        def do_DELETE(self) -> None:
            with store.lock:
                gone = store.objects.pop(self.path.split("?")[0], None)
            self._send(200, gone) if gone else self._not_found()

    return Handler


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kubeconfig(port: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "stand-in", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
            "users": [{"name": "checker", "user": {"token": "unused"}}],
            "contexts": [
                {
                    "name": "stand-in",
                    "context": {"cluster": "stand-in", "user": "checker", "namespace": NAMESPACE},
                }
            ],
            "current-context": "stand-in",
        }
    )


# ----------------------------------------------------------------------------- checks
def check_custom_resource(doc: dict[str, Any]) -> list[str]:
    kind, spec = doc["kind"], doc.get("spec") or {}
    problems = []
    if not doc.get("metadata", {}).get("name"):
        problems.append("metadata.name missing")
    if kind == "ExternalSecret":
        ref = spec.get("secretStoreRef") or {}
        if not (ref.get("name") and ref.get("kind") in {"SecretStore", "ClusterSecretStore"}):
            problems.append("spec.secretStoreRef needs name and kind")
        if not spec.get("target", {}).get("name"):
            problems.append("spec.target.name missing")
        for item in spec.get("data") or [None]:
            if not (item and item.get("secretKey") and item.get("remoteRef", {}).get("key")):
                problems.append("spec.data[] needs secretKey and remoteRef.key")
    elif kind == "ScaledObject":
        if not spec.get("scaleTargetRef", {}).get("name"):
            problems.append("spec.scaleTargetRef.name missing")
        if not isinstance(spec.get("maxReplicaCount"), int) or spec["maxReplicaCount"] < 1:
            problems.append("spec.maxReplicaCount must be a positive integer")
        for trig in spec.get("triggers") or [None]:
            meta = (trig or {}).get("metadata") or {}
            if not trig or trig.get("type") != "kafka":
                problems.append("expected one kafka trigger")
            elif not all(
                isinstance(meta.get(k), str)
                for k in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold")
            ):
                problems.append("kafka trigger metadata values must be strings")
    elif kind == "TriggerAuthentication":
        if not (spec.get("podIdentity") or spec.get("secretTargetRef")):
            problems.append("spec needs podIdentity or secretTargetRef")
    elif kind == "ServiceMonitor":
        if not spec.get("selector", {}).get("matchLabels"):
            problems.append("spec.selector.matchLabels missing")
        if not spec.get("endpoints") or not all(e.get("port") for e in spec["endpoints"]):
            problems.append("spec.endpoints[].port missing")
    elif kind == "PrometheusRule":
        groups = spec.get("groups") or []
        if not groups:
            problems.append("spec.groups empty")
        for group in groups:
            for rule in group.get("rules") or []:
                if not rule.get("expr") or not (rule.get("alert") or rule.get("record")):
                    problems.append(f"group {group.get('name')}: rule without expr/alert/record")
    return problems


def check_manifest(doc: dict[str, Any]) -> list[str]:
    if doc["kind"] in CUSTOM_KINDS:
        return check_custom_resource(doc)
    problems = []
    for version in sorted({KUBE_FLOOR, KUBE_VERSION}):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"k8s {version}: {'.'.join(map(str, exc.path))}: {exc.message}")
    return problems


def lint(cfg: helm_sdkpy.Configuration, values: dict[str, Any], workdir: Path) -> list[str]:
    """`helm lint -f`: the library lints a chart with its own values.yaml, so lint a copy."""
    copy_dir = workdir / "order-service"
    shutil.rmtree(copy_dir, ignore_errors=True)
    shutil.copytree(CHART, copy_dir)
    (copy_dir / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    result = asyncio.run(helm_sdkpy.Lint(cfg).run(str(copy_dir)))
    problems = [f"lint: {m}" for m in result.get("Errors") or []]
    # Severity 0 unknown, 1 info, 2 warning, 3 error (helm pkg/lint/support).
    problems += [
        f"lint {m.get('Path')}: {m.get('Err')}"
        for m in result.get("Messages") or []
        if m.get("Severity", 0) >= 2
    ]
    return problems


def render(
    cfg: helm_sdkpy.Configuration, release: str, overrides: dict[str, Any]
) -> list[dict[str, Any]]:
    rel = asyncio.run(
        helm_sdkpy.Install(cfg).run(
            release, str(CHART), values=overrides or None, wait=False, timeout=60
        )
    )
    texts = [rel.get("manifest") or ""] + [h.get("manifest") or "" for h in rel.get("hooks") or []]
    return [d for text in texts for d in yaml.safe_load_all(text) if d]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    parser.add_argument("--sync-rules", action="store_true")
    args = parser.parse_args()
    if args.sync_rules:
        sync_rules()
        return 0

    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = load_yaml(CHART / "values.yaml")
    store = _Store()
    port = _free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(store))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = helm_sdkpy.Configuration(namespace=NAMESPACE, kubeconfig=_kubeconfig(port))
    failures: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for index, path in enumerate(values_files()):
                name = path.stem
                overrides = {} if path.name == "values.yaml" else load_yaml(path)
                values = coalesce(defaults, overrides)
                problems = [
                    f"schema: {'.'.join(map(str, e.path))}: {e.message}"
                    for e in jsonschema.Draft7Validator(schema).iter_errors(values)
                ]
                problems += lint(cfg, values, Path(tmp))
                docs: list[dict[str, Any]] = []
                try:
                    docs = render(cfg, f"orders{index}", overrides)
                except helm_sdkpy.HelmError as exc:
                    problems.append(f"install: {exc}")
                for doc in docs:
                    problems += [
                        f"{doc['kind']}/{doc['metadata'].get('name')}: {p}"
                        for p in check_manifest(doc)
                    ]
                print(f"{name}: {len(docs)} objects, {len(problems)} problems")
                failures += [f"{path.relative_to(REPO)}: {p}" for p in problems]
                if args.out:
                    args.out.mkdir(parents=True, exist_ok=True)
                    (args.out / f"{name}.json").write_text(json.dumps(docs, indent=1))
        for path in AWS_MANIFESTS:
            problems = [
                f"{doc['kind']}/{doc['metadata']['name']}: {p}"
                for doc in yaml.safe_load_all(path.read_text())
                if doc
                for p in check_manifest(doc)
            ]
            print(f"{path.name}: {len(problems)} problems")
            failures += [f"{path.relative_to(REPO)}: {p}" for p in problems]
    finally:
        server.shutdown()
    for line in failures:
        print("FAIL", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
