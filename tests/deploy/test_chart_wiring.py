"""The rendered chart agrees with itself, for every values file: ports, selectors, what the
NetworkPolicy lets through, the termination budget, and the settings the pods get."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Any

import yaml

from order_service.config import Settings
from tests.deploy.addresses import bootstrap, parse_dsn, url
from tests.deploy.manifests import (
    Peer,
    Pod,
    config,
    container_port,
    deployment_pods,
    egress_allowed,
    ingress_allowed,
    kind,
    pods,
    selects,
    service_pods,
)
from tests.deploy.sources import CHART, REPO, Docs

PROBE_PATHS = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
# What the kubelet needs beyond the drain itself to see the process gone (pools closed, exit).
GRACE_MARGIN_S = 2
# Kafka's and MSK's default log.retention.hours; none of our topics overrides it.
TOPIC_RETENTION_HOURS = 168
# The DSN of the guide's RDS secret (docs/deploy-aws.md) where the chart gets it from elsewhere.
EXTERNAL_DSN = "postgresql+asyncpg://orders:secret@orders-db.rds.amazonaws.com:5432/orderdb"
OUTSIDE = "203.0.113.10"  # TEST-NET-3: an address in no cluster and no VPC


def _listen_port(pod: Pod) -> int:
    (container,) = pod.spec["containers"]
    args = container["args"]
    return int(args[args.index("--port") + 1])


def test_services_probes_and_listeners_agree_on_every_port(rendered: dict[str, Docs]) -> None:
    """Catches a Service targetPort, probe port or Ingress backend port that names no port of
    the container, and a `--port` other than the containerPort (tried: the container port
    renamed `web`; `--port` taken from service.port; the Ingress backend port `metrics`)."""
    for name, docs in rendered.items():
        for pod in deployment_pods(docs):
            (container,) = pod.spec["containers"]
            listen = _listen_port(pod)
            assert [p["containerPort"] for p in container["ports"]] == [listen], (name, pod.owner)
            for probe, path in PROBE_PATHS.items():
                get = container[probe]["httpGet"]
                target = container_port(container, get["port"])
                assert target and target["containerPort"] == listen, (name, pod.owner, probe)
                assert get["path"] == path, (name, pod.owner, probe)
        services = {s["metadata"]["name"]: s for s in kind(docs, "Service")}
        assert len(services) == 3, name
        for service in services.values():
            (pod,) = service_pods(service, docs)
            (container,) = pod.spec["containers"]
            for port in service["spec"]["ports"]:
                target = container_port(container, port["targetPort"])
                assert target, f"{name}: {service['metadata']['name']} targets {port['targetPort']}"
                assert (target["name"], target["protocol"]) == (port["name"], port["protocol"])
        for ingress in kind(docs, "Ingress"):
            for rule in ingress["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    ports = services[backend["name"]]["spec"]["ports"]
                    wanted = backend["port"].get("name") or backend["port"].get("number")
                    assert any(wanted in (p["name"], p["port"]) for p in ports), (name, wanted)


def _service_label(meta: str) -> str | None:
    prefix = "__meta_kubernetes_service_label_"
    return meta[len(prefix) :] if meta.startswith(prefix) else None


def test_service_monitor_selects_the_three_services_and_scrapes_ports_they_have(
    rendered: dict[str, Docs],
) -> None:
    """Catches a selector label the Services lack (tried: `app.kubernetes.io/part-of`), an
    endpoint port no Service names (tried: `metrics`), and jobLabel/targetLabels/relabelings
    reading Service labels that are not there (tried: jobLabel `order-service/jobname`)."""
    monitors = 0
    for name, docs in rendered.items():
        for monitor in kind(docs, "ServiceMonitor"):
            monitors += 1
            spec = monitor["spec"]
            assert not spec.get("namespaceSelector"), "the release's own namespace, nothing else"
            chosen = [
                s
                for s in kind(docs, "Service")
                if selects(spec["selector"]["matchLabels"], s["metadata"]["labels"])
            ]
            components = sorted(
                s["metadata"]["labels"]["app.kubernetes.io/component"] for s in chosen
            )
            assert components == ["api", "relay", "worker"], name
            for service in chosen:
                labels = service["metadata"]["labels"]
                sanitized = {re.sub(r"[^a-zA-Z0-9_]", "_", k) for k in labels}
                assert spec["jobLabel"] in labels, name
                assert set(spec.get("targetLabels") or []) <= set(labels), name
                (pod,) = service_pods(service, docs)
                (container,) = pod.spec["containers"]
                for endpoint in spec["endpoints"]:
                    assert endpoint["path"] == "/metrics"
                    named = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
                    assert named, f"{name}: {service['metadata']['name']} has no {endpoint['port']}"
                    port = named[0]
                    target = container_port(container, port["targetPort"])
                    assert target and target["containerPort"] == _listen_port(pod), name
                    for relabel in endpoint.get("relabelings") or []:
                        for source in relabel.get("sourceLabels") or []:
                            label = _service_label(source)
                            assert label is None or label in sanitized, (name, source)
    assert monitors >= 2, "values-aws and all-features render a ServiceMonitor"


def _dsn(docs: Docs) -> str:
    secrets = kind(docs, "Secret")
    return secrets[0]["stringData"]["POSTGRES_DSN"] if secrets else EXTERNAL_DSN


def _egress_needs(docs: Docs) -> list[tuple[str, int, str]]:
    """(what, port, protocol) each api/relay/worker pod must be able to open."""
    cfg = config(docs)
    needs = [("DNS", 53, "UDP"), ("DNS", 53, "TCP")]
    needs += [(f"PostgreSQL {h}", p, "TCP") for h, p in parse_dsn(_dsn(docs)).hosts]
    needs += [(f"Kafka {h}", p, "TCP") for h, p in bootstrap(cfg["KAFKA_BOOTSTRAP_SERVERS"])]
    if endpoint := cfg.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        needs.append(("OTLP collector", url(endpoint)[1], "TCP"))
    if jwks := cfg.get("AUTH_JWKS_URL"):
        needs.append(("JWKS", url(jwks)[1], "TCP"))
    for account in kind(docs, "ServiceAccount"):
        if "eks.amazonaws.com/role-arn" in account["metadata"].get("annotations", {}):
            needs.append(("STS for IRSA", 443, "TCP"))
    return needs


def test_network_policy_lets_every_pod_reach_what_it_depends_on(rendered: dict[str, Docs]) -> None:
    """DNS, every PostgreSQL host of the DSN, every Kafka broker of the bootstrap list (MSK:
    9092/9094/9096/9098), the OTLP collector, the JWKS, STS; the migration Job DNS and
    PostgreSQL. Catches (tried): values-aws egressPorts without 9098 (MSK IAM), without 4318
    (the ADOT collector), the DNS rule UDP only."""
    policies = 0
    for name, docs in rendered.items():
        policies += len(kind(docs, "NetworkPolicy"))
        needs = _egress_needs(docs)
        for pod in pods(docs):
            if pod.component == "migrate":  # `order-service migrate` talks to PostgreSQL only
                wanted = [n for n in needs if n[0].startswith(("DNS", "PostgreSQL"))]
            else:
                wanted = needs
            for what, port, protocol in wanted:
                assert egress_allowed(
                    docs, pod, port, protocol
                ), f"{name}: {pod.owner} -> {what} {port}/{protocol}"
    assert policies, "no values file renders a NetworkPolicy"


def _prometheus_namespace() -> str:
    """Where docs/deploy-aws.md installs kube-prometheus-stack (the ServiceMonitor's reader)."""
    guide = (REPO / "docs" / "deploy-aws.md").read_text()
    found = re.search(
        r"kube-prometheus-stack prometheus-community/kube-prometheus-stack\s*\\?\s*-n (\S+)", guide
    )
    assert found, "docs/deploy-aws.md no longer installs kube-prometheus-stack with -n"
    return found.group(1)


def _adot_namespace() -> str:
    docs = yaml.safe_load_all((REPO / "deploy" / "aws" / "adot-collector.yaml").read_text())
    (deployment,) = [d for d in docs if d and d["kind"] == "Deployment"]
    namespace: str = deployment["metadata"]["namespace"]
    return namespace


def _scraper_namespaces(docs: Docs) -> set[str]:
    """Prometheus when a ServiceMonitor is rendered; the ADOT collector (its prometheus
    receiver scrapes the pods for CloudWatch) when the pods send it their OTLP."""
    found = {_prometheus_namespace()} if kind(docs, "ServiceMonitor") else set()
    endpoint = config(docs).get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint and url(endpoint)[0].startswith(f"adot-collector.{_adot_namespace()}."):
        found.add(_adot_namespace())
    return found


def test_network_policy_lets_the_scrapers_reach_every_metrics_port(
    rendered: dict[str, Docs],
) -> None:
    """Catches the namespace of a scraper left out (found: values-aws allowed `monitoring` and
    `kube-system`, but the ADOT collector that feeds CloudWatch runs in `observability`)."""
    checked = 0
    for name, docs in rendered.items():
        namespaces = _scraper_namespaces(docs)
        for pod in deployment_pods(docs):
            for namespace in namespaces:
                checked += bool(kind(docs, "NetworkPolicy"))
                port = _listen_port(pod)
                assert ingress_allowed(
                    docs, pod, port, Peer(namespace=namespace)
                ), f"{name}: {namespace} cannot scrape {pod.owner}:{port}/metrics"
    assert checked, "no values file has both a NetworkPolicy and a scraper"


def _ip_blocks(docs: Docs, pod: Pod) -> list[str]:
    return [
        entry["ipBlock"]["cidr"]
        for policy in kind(docs, "NetworkPolicy")
        if selects(policy["spec"]["podSelector"].get("matchLabels"), pod.labels)
        for rule in policy["spec"].get("ingress") or []
        for entry in rule.get("from") or []
        if "ipBlock" in entry
    ]


def test_network_policy_opens_the_api_port_and_only_it_to_an_ip_target_alb(
    rendered: dict[str, Docs],
) -> None:
    """An ALB with target-type ip connects from its own VPC addresses, which no
    namespaceSelector matches. Catches (found): values-aws and all-features let in only
    namespaces, so the ALB reached no api pod; (tried) an ipBlock rule that selects every pod
    of the release, opening the relay's and worker's ports to the VPC as well."""
    albs = 0
    for name, docs in rendered.items():
        for ingress in kind(docs, "Ingress"):
            if ingress["spec"]["ingressClassName"] != "alb":
                continue
            assert (
                ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/target-type"] == "ip"
            )
            albs += 1
            api = next(p for p in deployment_pods(docs) if p.component == "api")
            # An address of each range let in, or, with none, one outside any cluster.
            sources = [str(next(ipaddress.ip_network(c).hosts())) for c in _ip_blocks(docs, api)]
            sources = sources or [OUTSIDE]
            assert any(
                ingress_allowed(docs, api, _listen_port(api), Peer(address=a)) for a in sources
            ), f"{name}: the ALB cannot reach the api's port"
            for other in deployment_pods(docs):
                port = _listen_port(other)
                if other.component == "api" or ingress_allowed(
                    docs, other, port, Peer(address=OUTSIDE)
                ):
                    continue  # not isolated from outside at all: nothing more to leak
                leaked = [a for a in sources if ingress_allowed(docs, other, port, Peer(address=a))]
                assert not leaked, f"{name}: the load balancer's {leaked} reach {other.owner}"
    assert albs >= 2, "values-aws and all-features render an ALB Ingress"


def _pause_s(container: dict[str, Any]) -> int:
    hook = (container.get("lifecycle") or {}).get("preStop")
    if not hook:
        return 0
    if "sleep" in hook:
        return int(hook["sleep"]["seconds"])
    command = hook["exec"]["command"]
    assert command[0] in ("sleep", "/bin/sleep"), command
    return int(command[1])


def test_grace_period_outlasts_the_prestop_pause_and_the_drain(rendered: dict[str, Docs]) -> None:
    """terminationGracePeriodSeconds >= preStop pause + SHUTDOWN_TIMEOUT_S + margin on every
    Deployment, else the kubelet SIGKILLs in the middle of the drain. Catches a fixed grace
    period (tried: the old `terminationGracePeriodSeconds: 30`, while values-aws has a 20 s
    pause and a 20 s drain) and a derivation without the margin (tried: `add $preStop $shutdown`).
    """
    default = Settings.model_fields["shutdown_timeout_s"].default
    for name, docs in rendered.items():
        shutdown = math.ceil(float(config(docs).get("SHUTDOWN_TIMEOUT_S", default)))
        drain = math.ceil(float(config(docs).get("SHUTDOWN_DRAIN_S", 0)))
        for pod in deployment_pods(docs):
            (container,) = pod.spec["containers"]
            api_drain = drain if container["name"] == "api" else 0
            budget = _pause_s(container) + api_drain + shutdown + GRACE_MARGIN_S
            grace = pod.spec["terminationGracePeriodSeconds"]
            assert grace >= budget, f"{name}: {pod.owner} grace {grace}s < {budget}s"


def test_every_disruption_budget_lets_a_drain_evict_a_pod(rendered: dict[str, Docs]) -> None:
    """A budget that keeps as many pods as the workload may have at its smallest blocks every
    node drain for good (`kubectl drain` waits on it forever). The smallest is the KEDA
    ScaledObject's minReplicaCount, else the HPA's minReplicas, else `replicas`. Seen failing
    on ci/all-features-values: the worker's `minAvailable: 1` next to KEDA's `minReplicaCount: 0`.
    """
    checked = 0
    for name, docs in rendered.items():
        smallest = {
            d["metadata"]["name"]: d["spec"].get("replicas", 1) for d in kind(docs, "Deployment")
        }
        for hpa in kind(docs, "HorizontalPodAutoscaler"):
            smallest[hpa["spec"]["scaleTargetRef"]["name"]] = hpa["spec"].get("minReplicas", 1)
        for scaled in kind(docs, "ScaledObject"):
            smallest[scaled["spec"]["scaleTargetRef"]["name"]] = scaled["spec"]["minReplicaCount"]
        for budget in kind(docs, "PodDisruptionBudget"):
            checked += 1
            (target,) = [
                d["metadata"]["name"]
                for d in kind(docs, "Deployment")
                if selects(
                    budget["spec"]["selector"]["matchLabels"],
                    d["spec"]["template"]["metadata"]["labels"],
                )
            ]
            spec = budget["spec"]
            where = f"{name}: PodDisruptionBudget of {target}"
            assert ("minAvailable" in spec) != ("maxUnavailable" in spec), where
            if "maxUnavailable" in spec:
                assert isinstance(spec["maxUnavailable"], int) and spec["maxUnavailable"] >= 1
            else:
                keep = spec["minAvailable"]
                assert isinstance(keep, int), f"{where}: minAvailable {keep!r}"
                assert keep < smallest[target], f"{where} keeps {keep} of {smallest[target]}"
    assert checked >= 9  # three components, in every values file but the minimal one


def _kube_version_floor() -> tuple[int, int]:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    found = re.match(r">=\s*(\d+)\.(\d+)", chart["kubeVersion"])
    assert found, chart["kubeVersion"]
    return int(found.group(1)), int(found.group(2))


def test_api_pods_pause_before_sigterm_with_a_hook_the_cluster_and_image_run(
    rendered: dict[str, Docs],
) -> None:
    """Endpoint removal runs alongside termination: without a pause, kube-proxy and the ALB
    still send requests to a pod that has stopped accepting them. Catches (tried): no hook
    (api.preStopSleepSeconds 0); the native `sleep` action while kubeVersion admits 1.29, where
    it is off by default; an exec `sleep` on an image without coreutils (a distroless base)."""
    runtime_base = re.findall(r"^FROM\s+(\S+)", (REPO / "Dockerfile").read_text(), flags=re.M)[-1]
    for name, docs in rendered.items():
        (api,) = [p for p in deployment_pods(docs) if p.component == "api"]
        (container,) = api.spec["containers"]
        assert _pause_s(container) >= 5, f"{name}: the api has no preStop pause"
        hook = container["lifecycle"]["preStop"]
        if "sleep" in hook:
            assert _kube_version_floor() >= (1, 30), "preStop.sleep needs Kubernetes >= 1.30"
        else:
            assert re.search(r"-slim-(bookworm|trixie)$", runtime_base), runtime_base


def test_every_configmap_loads_as_settings_and_carries_the_topic_settings(
    rendered: dict[str, Docs],
) -> None:
    """Catches a value Settings refuses (tried: values-aws KAFKA_TOPIC_MIN_INSYNC_REPLICAS "4"
    over RF "3"), the status topic left out (tried: KAFKA_STATUS_TOPIC removed from values.yaml)
    and an inbox that forgets event ids before the topic drops them (tried: "72" hours)."""
    for name, docs in rendered.items():
        cfg = config(docs)
        fields = {k.lower(): v for k, v in cfg.items()}
        # model_validate: these values alone, not this machine's environment or .env.
        settings = Settings.model_validate({"postgres_dsn": _dsn(docs), **fields})
        assert cfg.get("KAFKA_STATUS_TOPIC") == settings.kafka_status_topic, name
        assert settings.inbox_retention_hours > TOPIC_RETENTION_HOURS, name
