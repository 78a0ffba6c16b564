"""Network namespaces joined to the host by veth pairs on one host bridge, with TCP faults.

Topology of one lab (one test): a bridge `osf-br<K>` on the host holding 10.213.<K>.1/24, and
per namespace `osf-<K>-<N>` a veth pair whose host end `osf-<K>-<N>h` is a bridge port and
whose other end is `eth0` inside, at 10.213.<K>.<10+N>/24 (default route via the host). The
host reaches every namespace and the namespaces reach each other over the bridge (layer 2,
no ip_forward needed). Faults are iptables rules inside a namespace, so they hit only the
servers living there, whoever the client is.

Ownership: lab K is held by an flock on /run/osf-netfault/K.lock for the lab's life. The
kernel drops the lock when its holder dies, so a leftover whose lock is free is garbage and a
sweep may remove it, even while other pytest sessions run labs of their own.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.netfault.tools import RigError, ip, ip_bin, iptables_bin, require_root, run

RIG_NETWORK = ipaddress.ip_network("10.213.0.0/16")
PREFIX = "osf-"
LOCK_DIR = Path("/run/osf-netfault")
FIRST_NODE = 10
MAX_LABS = 250
MAX_NODES = 200
# Data directories in RAM when possible: on the disk shared with other test runs initdb,
# pg_basebackup and the removal took seconds each.
SCRATCH_ROOTS = tuple(Path(d) for d in ("/dev/shm", tempfile.gettempdir()) if os.path.isdir(d))


@dataclass
class Namespace:
    """One namespace of a lab: `address` is its IPv4 address, reachable from the host."""

    name: str
    address: str
    host_veth: str
    _rules: dict[str, list[list[str]]] = field(default_factory=dict, repr=False)

    def exec_args(self, *command: str) -> list[str]:
        """`command` run inside the namespace, e.g. for subprocess.Popen."""
        return [ip_bin(), "netns", "exec", self.name, *command]

    def run(self, *command: str, check: bool = True) -> str:
        return run(self.exec_args(*command), check=check)

    def refuse(self, port: int) -> None:
        """TCP to `port` here is answered with a reset: connects are refused at once and an
        open connection is reset by its next packet. Replaces any earlier fault on `port`."""
        reject = ["-j", "REJECT", "--reject-with", "tcp-reset"]
        self._set(f"port {port}", [["INPUT", "-p", "tcp", "--dport", str(port), *reject]])

    def cut(self, port: int) -> None:
        """`refuse`, both ways: TCP to `port` here, and from here to `port` anywhere, is reset.
        For a server whose peers talk to each other on its own port (Kafka's replication
        runs on the client listener): cut off from clients and peers, not from the rest."""
        reject = ["-j", "REJECT", "--reject-with", "tcp-reset"]
        self._set(
            f"port {port}",
            [
                ["INPUT", "-p", "tcp", "--dport", str(port), *reject],
                ["OUTPUT", "-p", "tcp", "--dport", str(port), *reject],
            ],
        )

    def blackhole(self, port: int) -> None:
        """Every packet to and from `port` here is dropped: connects time out and open
        connections hang (no reset, no FIN; the peer's TCP retransmits in silence)."""
        self._set(
            f"port {port}",
            [
                ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"],
                ["OUTPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP"],
            ],
        )

    def isolate(self) -> None:
        """Drop everything on eth0, both ways: the namespace is partitioned from the host
        and its peers, outgoing connections (e.g. a standby's replication) included."""
        self._set(
            "isolate",
            [["INPUT", "-i", "eth0", "-j", "DROP"], ["OUTPUT", "-o", "eth0", "-j", "DROP"]],
        )

    def heal(self, port: int | None = None) -> None:
        """Remove the fault on `port`, or every fault of this namespace when `port` is None."""
        for key in list(self._rules) if port is None else [f"port {port}"]:
            self._unset(key)

    def rules(self) -> list[str]:
        """The namespace's filter rules as `iptables -S` prints them (policies included)."""
        return self._iptables("-S").splitlines()

    def pids(self) -> list[int]:
        return [int(pid) for pid in ip("netns", "pids", self.name, check=False).split()]

    def _set(self, key: str, rules: list[list[str]]) -> None:
        self._unset(key)
        for rule in rules:
            self._iptables("-A", *rule)
        self._rules[key] = rules

    def _unset(self, key: str) -> None:
        for rule in self._rules.pop(key, []):
            self._iptables("-D", *rule)

    def _iptables(self, *args: str) -> str:
        return self.run(iptables_bin(self.name), "-w", *args)


def _host_networks() -> list[tuple[str, ipaddress.IPv4Network]]:
    routes = json.loads(ip("-j", "-4", "route", "show", "table", "all") or "[]")
    found = []
    for route in routes:
        dst = route.get("dst", "default")
        if dst in ("default", "broadcast", "local") or route.get("type") in ("broadcast", "local"):
            continue
        with contextlib.suppress(ValueError):
            found.append((str(route.get("dev", "")), ipaddress.IPv4Network(dst, strict=False)))
    return found


def check_no_collision(network: ipaddress.IPv4Network) -> None:
    """Fail when a host route that is not ours overlaps `network`."""
    for dev, other in _host_networks():
        if not dev.startswith(PREFIX) and other.overlaps(network):
            raise RigError(
                f"the rig's range {network} overlaps the host's {other} on {dev}: "
                "change RIG_NETWORK in tests/netfault/namespaces.py"
            )


class NetLab:
    """A private /24 on a host bridge; `namespace()` adds namespaces to it.

    Guarantee: `close()` (the fixture's finalizer, also after a failed test) kills every
    process left inside the lab's namespaces and removes the namespaces, the veths, the
    bridge and thereby every rule, and the lab's scratch directories; nothing named
    `osf-<K>-*`, `osf-br<K>` or `osf-lab<K>-*` remains.
    """

    def __init__(self) -> None:
        require_root()
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        self.index, self._lock_fd = _claim_lab_index()
        self.network = ipaddress.IPv4Network(f"{RIG_NETWORK.network_address + self.index * 256}/24")
        self.gateway = str(self.network.network_address + 1)
        self.bridge = f"{PREFIX}br{self.index}"
        self.namespaces: list[Namespace] = []
        try:
            remove_lab(self.index)  # a dead holder's leftovers
            check_no_collision(self.network)
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    def namespace(self) -> Namespace:
        """A new namespace on the lab's bridge, `lo` and `eth0` up, no rules."""
        number = len(self.namespaces)
        if number >= MAX_NODES:
            raise RigError(f"a lab holds at most {MAX_NODES} namespaces")
        name = f"{PREFIX}{self.index}-{number}"
        address = str(self.network.network_address + FIRST_NODE + number)
        namespace = Namespace(name, address, f"{name}h")
        ip("netns", "add", name)
        self.namespaces.append(namespace)
        ip(
            "link",
            "add",
            namespace.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            name,
        )
        ip("link", "set", namespace.host_veth, "master", self.bridge, "up")
        ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", name, "link", "set", "eth0", "up")
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "route", "add", "default", "via", self.gateway)
        iptables_bin(name)  # fail here, with the reason, if no backend works
        return namespace

    def scratch_dir(self, label: str) -> Path:
        """A new directory for server data (in /dev/shm when there is one), removed with the
        lab. Not tmp_path: the cluster's system user must reach it, and pytest's base
        directory is private to root."""
        prefix = f"{PREFIX}lab{self.index}-{label}-"
        return Path(tempfile.mkdtemp(prefix=prefix, dir=SCRATCH_ROOTS[0]))

    def close(self) -> None:
        try:
            remove_lab(self.index)
        finally:
            os.close(self._lock_fd)

    def __enter__(self) -> NetLab:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _claim_lab_index() -> tuple[int, int]:
    for index in range(MAX_LABS):
        fd = try_lock(index)
        if fd is not None:
            return index, fd
    raise RigError(f"all {MAX_LABS} rig labs are held by live processes")


def try_lock(index: int) -> int | None:
    """The lab's lock fd when nobody alive holds it, else None."""
    fd = os.open(LOCK_DIR / f"{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def remove_namespace(name: str) -> None:
    """SIGKILL whatever runs inside (a namespace outlives `ip netns del` while a process is
    in it, and so would its veth), then delete it."""
    deadline = time.monotonic() + 5.0
    while pids := ip("netns", "pids", name, check=False).split():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGCONT)
                os.kill(int(pid), signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RigError(f"processes {pids} in namespace {name} survive SIGKILL")
        time.sleep(0.02)
    ip("netns", "del", name, check=False)


def remove_lab(index: int) -> None:
    """Remove every namespace and link of lab `index` (the caller holds its lock)."""
    for name in namespace_names():
        if name.startswith(f"{PREFIX}{index}-"):
            remove_namespace(name)
    for link in link_names():
        if link.startswith(f"{PREFIX}{index}-") or link == f"{PREFIX}br{index}":
            ip("link", "del", link, check=False)
    for root in SCRATCH_ROOTS:
        for directory in root.glob(f"{PREFIX}lab{index}-*"):
            shutil.rmtree(directory, ignore_errors=True)


def namespace_names() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.startswith(PREFIX)]


def scratch_names() -> list[str]:
    return sorted(str(d) for root in SCRATCH_ROOTS for d in root.glob(f"{PREFIX}lab*"))


def link_names() -> list[str]:
    links = json.loads(ip("-j", "link", "show") or "[]")
    return [str(link["ifname"]) for link in links if str(link["ifname"]).startswith(PREFIX)]
