"""Where the observability backends' binaries are, for `order-service dev --observe` and tests.

Jaeger and the OpenTelemetry Collector are built from source by `scripts/observe-install.sh`
into a cache outside the repo, keyed by the version pinned in `tools/` (the Collector also by
its builder manifest's hash): the same rule is read here. Prometheus, Alertmanager and
postgres-exporter are Debian's packages (`scripts/system-deps.sh`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
TOOLS = REPO / "tools"
JAEGER_CONFIG = TOOLS / "jaeger" / "config.yaml"
OTELCOL_MANIFEST = TOOLS / "otelcol" / "builder-config.yaml"
INSTALL = "scripts/observe-install.sh"


class ToolMissing(RuntimeError):
    pass


def cache_dir() -> Path:
    base = os.environ.get("ORDER_SERVICE_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "order-service"
    )
    return Path(base) / "go"


def jaeger_version() -> str:
    found = re.search(
        r"^\s*github\.com/jaegertracing/jaeger (\S+)",
        (TOOLS / "jaeger" / "go.mod").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    if found is None:
        raise ToolMissing("tools/jaeger/go.mod does not pin github.com/jaegertracing/jaeger")
    return found.group(1)


def otelcol_version() -> str:
    text = OTELCOL_MANIFEST.read_text(encoding="utf-8")
    found = re.search(r"^\s*version: (\S+)", text, re.MULTILINE)
    if found is None:
        raise ToolMissing(f"{OTELCOL_MANIFEST} has no dist version")
    return f"v{found.group(1)}"


def _built(path: Path, what: str) -> str:
    if not os.access(path, os.X_OK):
        raise ToolMissing(f"{what} not built ({path} missing): run {INSTALL}")
    return str(path)


def jaeger() -> str:
    version = jaeger_version()
    return _built(cache_dir() / f"jaeger-{version}" / "bin" / "jaeger", f"Jaeger {version}")


def otelcol() -> str:
    digest = hashlib.sha256(OTELCOL_MANIFEST.read_bytes()).hexdigest()[:12]
    version = otelcol_version()
    path = cache_dir() / f"otelcol-{version}-{digest}" / "bin" / "otelcol"
    return _built(path, f"the OpenTelemetry Collector {version}")


def debian(name: str) -> str:
    """A binary of Debian's prometheus packages, by name."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found: run scripts/system-deps.sh (Debian packages)")
    return path
