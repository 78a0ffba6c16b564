"""The host tools the rig drives (`ip`, `iptables`), found once, and a runner that fails loudly.

A missing tool or capability is a test failure with the reason, never a skip: a fault suite
that silently skips proves nothing.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

SBIN_DIRS = ("/usr/sbin", "/sbin")
# Both backends filter packets inside a namespace on this kernel (6.18); nft is Debian's
# default `iptables`, legacy the fallback for kernels without nf_tables.
IPTABLES_CANDIDATES = ("iptables-nft", "iptables-legacy", "iptables")


class RigError(AssertionError):
    """The rig cannot do what a test asked of it (a tool, a capability, an address)."""


def find_tool(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (f"{d}/{name}" for d in SBIN_DIRS if os.access(f"{d}/{name}", os.X_OK)), None
    )
    if path is None:
        raise RigError(
            f"`{name}` not found: install the Debian package {package} "
            "(scripts/system-deps.sh does it as root)"
        )
    return path


def require_root() -> None:
    if os.geteuid() != 0:
        raise RigError("the network-fault rig needs root (network namespaces, veth, iptables)")


@functools.cache
def ip_bin() -> str:
    return find_tool("ip", "iproute2")


def run(args: list[str], *, check: bool = True, timeout_s: float = 20.0) -> str:
    """Run a command; a non-zero exit is a RigError naming the command and its stderr."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    if check and result.returncode != 0:
        raise RigError(f"`{' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def ip(*args: str, check: bool = True) -> str:
    return run([ip_bin(), *args], check=check)


_iptables: list[str] = []


def iptables_bin(probe_netns: str) -> str:
    """The first iptables backend that can list rules inside a namespace of ours (cached)."""
    if _iptables:
        return _iptables[0]
    errors = []
    for name in IPTABLES_CANDIDATES:
        try:
            path = find_tool(name, "iptables")
        except RigError as exc:
            errors.append(str(exc))
            continue
        result = subprocess.run(
            [ip_bin(), "netns", "exec", probe_netns, path, "-w", "-S"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            _iptables.append(path)
            return path
        errors.append(f"{name}: {result.stderr.strip()}")
    raise RigError("no working iptables in a network namespace: " + "; ".join(errors))
