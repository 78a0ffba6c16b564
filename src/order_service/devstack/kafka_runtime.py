"""Apache Kafka's broker runtime: resolved once by Maven into a cache outside the repo.

The jars are pinned in `kafka_assets/pom.xml` and copied into
`$ORDER_SERVICE_CACHE/kafka-<version>/lib` (default `~/.cache/order-service`), keyed by
version, so a second run installs nothing and a version bump installs beside the old one.
`python -m order_service.devstack.kafka_runtime` installs it (what `make test` calls) and
prints the directory; a missing Java or Maven, or an unreachable Maven Central, is one line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).with_name("kafka_assets")
POM = ASSETS / "pom.xml"
LOG_CONFIG = ASSETS / "log4j2.properties"
MIN_JAVA = 17
_MAVEN_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class KafkaRuntimeError(RuntimeError):
    """Why Apache Kafka cannot run here, in one line."""


def kafka_version() -> str:
    pom = ET.parse(POM)  # noqa: S314 - our own packaged file, not untrusted input
    node = pom.find("m:properties/m:kafka.version", _MAVEN_NS)
    if node is None or not node.text:
        raise KafkaRuntimeError(f"{POM} names no kafka.version")
    return node.text.strip()


def cache_root() -> Path:
    explicit = os.environ.get("ORDER_SERVICE_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "order-service"


@dataclass(frozen=True)
class KafkaRuntime:
    """An installed runtime: `java` and the classpath that runs `kafka.Kafka`."""

    java: str
    lib: Path

    @property
    def classpath(self) -> str:
        return str(self.lib / "*")

    def command(
        self, main_class: str, *args: str, heap_mb: int = 512, jvm_options: Sequence[str] = ()
    ) -> list[str]:
        return [
            self.java,
            f"-Xms{min(256, heap_mb)}m",
            f"-Xmx{heap_mb}m",
            "-XX:+UseSerialGC",  # two cores: no parallel GC threads fighting the stack
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG_CONFIG}",
            *jvm_options,
            "-cp",
            self.classpath,
            main_class,
            *args,
        ]


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise KafkaRuntimeError(
            f"Apache Kafka needs Java {MIN_JAVA}+, and no `java` was found (JAVA_HOME or PATH);"
            " install it with `apt-get install openjdk-17-jre-headless`"
        )
    probe = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', probe.stderr + probe.stdout)
    major = int(match.group(1)) if match else 0
    if major < MIN_JAVA:
        raise KafkaRuntimeError(
            f"Apache Kafka needs Java {MIN_JAVA}+, and {java} is Java {major or 'unknown'}"
        )
    return java


def lib_dir(version: str | None = None) -> Path:
    return cache_root() / f"kafka-{version or kafka_version()}" / "lib"


def installed() -> KafkaRuntime:
    """The runtime, which must be installed already (tests and `dev` call this)."""
    lib = lib_dir()
    if not (lib / ".complete").exists():
        raise KafkaRuntimeError(
            f"Apache Kafka {kafka_version()} is not installed in {lib.parent};"
            " `make kafka` (or `make test`) installs it"
        )
    return KafkaRuntime(_java(), lib)


def install() -> KafkaRuntime:
    """Install the runtime when missing: Maven resolves the pinned jars into the cache."""
    java = _java()
    lib = lib_dir()
    if (lib / ".complete").exists():
        return KafkaRuntime(java, lib)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaRuntimeError(
            "installing Apache Kafka needs Maven, and no `mvn` is on PATH;"
            " install it with `apt-get install maven`"
        )
    staging = lib.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    result = subprocess.run(
        [
            mvn,
            "--batch-mode",
            "--quiet",
            "--file",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        raise KafkaRuntimeError(
            f"Maven could not resolve Apache Kafka {kafka_version()} (is Maven Central"
            f" reachable?): {last[0][:300]}"
        )
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    (lib / ".complete").write_text(kafka_version() + "\n")
    return KafkaRuntime(java, lib)


def main() -> int:
    try:
        runtime = install()
    except KafkaRuntimeError as exc:
        print(f"order-service: {exc}", file=sys.stderr)
        return 1
    print(f"Apache Kafka {kafka_version()} in {runtime.lib.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
