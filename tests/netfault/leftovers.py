"""The session-start sweep: remove what killed runs left behind, never a live run's lab."""

from __future__ import annotations

import os
import re
from pathlib import Path

from tests.netfault.namespaces import (
    LOCK_DIR,
    PREFIX,
    link_names,
    namespace_names,
    remove_lab,
    remove_namespace,
    scratch_names,
    try_lock,
)
from tests.netfault.tools import ip, require_root

_LAB_OF = re.compile(rf"^{PREFIX}(?:br|lab)?(\d+)(?:-|$)")


def sweep_leftovers() -> list[str]:
    """Remove every `osf-*` namespace, link and scratch directory (with the servers still
    running in them) whose lab lock no live process holds.

    Returns what was removed (for the log). Names with our prefix that no lab owns (an
    older scheme, a hand-made probe) are removed too.
    """
    require_root()
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    labs = {int(m.group(1)) for d in scratch_names() if (m := _LAB_OF.match(Path(d).name))}
    removed: list[str] = []
    for name in namespace_names() + link_names():
        match = _LAB_OF.match(name)
        if match:
            labs.add(int(match.group(1)))
        elif name in namespace_names():
            remove_namespace(name)
            removed.append(name)
        else:
            ip("link", "del", name, check=False)
            removed.append(name)
    for index in sorted(labs):
        fd = try_lock(index)
        if fd is None:
            continue  # a live session's lab
        try:
            before = set(_ours())
            remove_lab(index)
            removed += sorted(before - set(_ours()))
        finally:
            os.close(fd)
    return removed


def _ours() -> list[str]:
    return namespace_names() + link_names() + scratch_names()
