"""Reading rendered Kubernetes objects the way the cluster would: selectors, named ports and
NetworkPolicy rules resolved, so a test can ask "can X reach Y" instead of comparing strings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
NAMESPACE = "order-service"  # where check_chart.py installs the release


def kind(docs: list[Obj], name: str) -> list[Obj]:
    return [d for d in docs if d["kind"] == name]


def config(docs: list[Obj]) -> dict[str, str]:
    (configmap,) = kind(docs, "ConfigMap")
    data: dict[str, str] = configmap["data"]
    return data


def selects(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    """matchLabels semantics: an empty selector selects everything."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


@dataclass(frozen=True)
class Pod:
    owner: str  # "Deployment/<name>" or "Job/<name>"
    labels: dict[str, str]
    spec: Obj

    @property
    def component(self) -> str:
        return self.labels.get("app.kubernetes.io/component", "")


def pods(docs: list[Obj]) -> list[Pod]:
    return [
        Pod(
            f"{d['kind']}/{d['metadata']['name']}", template["metadata"]["labels"], template["spec"]
        )
        for d in docs
        if d["kind"] in ("Deployment", "Job")
        for template in [d["spec"]["template"]]
    ]


def deployment_pods(docs: list[Obj]) -> list[Pod]:
    return [p for p in pods(docs) if p.owner.startswith("Deployment/")]


def container_port(container: Obj, ref: int | str) -> Obj | None:
    """The container port a Service targetPort / probe port / policy port refers to."""
    for port in container.get("ports") or []:
        if ref in (port.get("name"), port["containerPort"]):
            return dict(port)
    return None


def service_pods(service: Obj, docs: list[Obj]) -> list[Pod]:
    return [p for p in pods(docs) if selects(service["spec"]["selector"], p.labels)]


# ----------------------------------------------------------------------------- NetworkPolicy
@dataclass(frozen=True)
class Peer:
    """Where a connection comes from: pods of a namespace, or an address outside the cluster."""

    namespace: str | None = None
    address: str | None = None


def _policies_for(docs: list[Obj], pod: Pod, policy_type: str) -> list[Obj]:
    return [
        p
        for p in kind(docs, "NetworkPolicy")
        if policy_type in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"].get("matchLabels"), pod.labels)
    ]


def _port_matches(rule: Obj, container: Obj, number: int, protocol: str) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        target = container_port(container, entry["port"]) if container else None
        if entry["port"] == number or (target and target["containerPort"] == number):
            return True
    return False


def _peer_matches(entry: Obj, peer: Peer) -> bool:
    if "ipBlock" in entry:
        if peer.address is None:
            return False
        block = entry["ipBlock"]
        addr = ipaddress.ip_address(peer.address)
        inside = addr in ipaddress.ip_network(block["cidr"])
        return inside and not any(addr in ipaddress.ip_network(c) for c in block.get("except", []))
    if peer.namespace is None or entry.get("podSelector", {}).get("matchLabels"):
        return False
    ns_labels = {"kubernetes.io/metadata.name": peer.namespace}
    if "namespaceSelector" not in entry:
        return peer.namespace == NAMESPACE
    return selects(entry["namespaceSelector"].get("matchLabels"), ns_labels)


def ingress_allowed(docs: list[Obj], pod: Pod, port: int, peer: Peer) -> bool:
    """Can `peer` open a TCP connection to `pod` on container port `port`?"""
    policies = _policies_for(docs, pod, "Ingress")
    if not policies:
        return True  # a pod no policy selects is not isolated
    (container,) = pod.spec["containers"]
    return any(
        _port_matches(rule, container, port, "TCP")
        and (not rule.get("from") or any(_peer_matches(e, peer) for e in rule["from"]))
        for policy in policies
        for rule in policy["spec"].get("ingress") or []
    )


def egress_allowed(docs: list[Obj], pod: Pod, port: int, protocol: str = "TCP") -> bool:
    """Can `pod` connect out on `port` to anywhere (rules restricted by `to` do not count)?"""
    policies = _policies_for(docs, pod, "Egress")
    if not policies:
        return True
    return any(
        _port_matches(rule, {}, port, protocol) and not rule.get("to")
        for policy in policies
        for rule in policy["spec"].get("egress") or []
    )
