"""How the supervisor starts a child and waits for it to serve."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from order_service.devstack.pdeathsig import die_with_parent


class Stopped(Exception):
    """A stop signal arrived while the stack was still starting."""


def spawn(argv: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """A child in a session of its own, signalled SIGTERM when the supervisor dies; its output
    appended to `log` (else the supervisor's terminal).

    The session: the terminal's signals reach only the supervisor, which stops the services in
    order and with SIGTERM (they drain), not all at once."""
    out = log.open("ab") if log else None
    try:
        return subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
    finally:
        if out:
            out.close()


def wait_http_ok(
    url: str,
    timeout_s: float,
    process: subprocess.Popen[bytes],
    stopping: Callable[[], bool],
    expect: int = 200,
) -> bool:
    """Whether `url` answered `expect` in time; False as soon as the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if stopping():
            raise Stopped
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == expect:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code == expect:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False
