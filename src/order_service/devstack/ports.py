"""Port checks: a taken port is a clear one-line error, not a stack trace from a child."""

from __future__ import annotations

import socket
import time


class PortInUse(RuntimeError):
    def __init__(self, host: str, port: int, what: str) -> None:
        super().__init__(
            f"port {host}:{port} for {what} is already in use; free it or pick another"
        )


def is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_free(host: str, port: int, what: str) -> None:
    if not is_free(host, port):
        raise PortInUse(host, port, what)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_listener(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
