"""Children that die with the process that started them: Linux's PR_SET_PDEATHSIG.

However the supervisor ends, SIGKILL included, the kernel signals each child whose parent
death signal is set; nothing has to run in the dying process. Elsewhere (macOS) there is no
such call and the pid records under `.dev/run/` (`reaper.py`) are the only net.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int) -> Callable[[], None] | None:
    """A `preexec_fn` that has the child receive `signum` when this process's thread dies.

    Runs in the child between fork and exec. CPython calls it after the setgid/setuid of
    `Popen(user=...)`, which matters: the kernel clears the setting on a credential change,
    and keeps it across exec of a binary that is not set-uid. It is tied to the spawning
    *thread*, so spawn from the main thread (the supervisor does).
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def set_pdeathsig() -> None:
        if prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # The parent may have died between fork() and prctl(): the signal would never come.
        if os.getppid() != parent:
            os._exit(1)

    return set_pdeathsig
