"""PostgreSQL's CPU split by whom it served: each backend's client port is matched to the
process (api, relay, worker) holding that socket; everything else is "background" (the
postmaster, the WAL writer, the checkpointer, autovacuum)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping

import psutil

from bench.processes import process_tree

_CLIENT_PORT = re.compile(r"\((\d+)\)")  # "postgres: user db 127.0.0.1(54321) idle"


def _ports_of(clients: Mapping[str, int]) -> dict[int, str]:
    owner: dict[int, str] = {}
    for name, pid in clients.items():
        try:
            for connection in psutil.Process(pid).net_connections(kind="tcp"):
                owner[connection.laddr.port] = name
        except psutil.NoSuchProcess:
            continue
    return owner


def cpu_by_client(postgres_pid: int, clients: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of the backends serving each client, and of the rest. Backends live
    as long as their pooled connection, so take the difference of two calls."""
    owner = _ports_of(clients)
    spent: defaultdict[str, float] = defaultdict(float)
    for process in process_tree(postgres_pid):
        try:
            times = process.cpu_times()
            title = " ".join(process.cmdline())
        except psutil.NoSuchProcess:
            continue
        port = _CLIENT_PORT.search(title)
        client = owner.get(int(port.group(1)), "other clients") if port else "background"
        spent[client] += times.user + times.system
    return dict(spent)
