"""Run a block inside a named network namespace (one made by `ip netns add NAME`).

setns(2) moves only the calling thread, and a child inherits its parent thread's namespace: a
server started in the block (its Popen and readiness probes alike) lives and listens in the
namespace, the rest of the process stays where it was. The thread moves back on exit, so call
it from a long-lived thread: a PR_SET_PDEATHSIG child dies with the thread that forked it.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"


class NetnsError(RuntimeError):
    pass


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NetnsError(f"setns(CLONE_NEWNET) failed: {os.strerror(errno)} (needs root)")


@contextmanager
def inside(name: str | None) -> Iterator[None]:
    """The calling thread in namespace `name` for the block; `None` changes nothing."""
    if name is None:
        yield
        return
    path = os.path.join(NETNS_DIR, name)
    if not os.path.exists(path):
        raise NetnsError(f"network namespace {name!r} does not exist ({path})")
    with open("/proc/thread-self/ns/net", "rb") as home, open(path, "rb") as target:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())
