"""Pid records under `.dev/run/`: a record names one process, never whoever has its pid now."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import orjson

from order_service.devstack import pidfiles


def test_a_record_finds_its_process_while_it_runs_and_not_after(tmp_path: Path) -> None:
    """Catches: a record written without the start time, or an exited (zombie) process still
    counted as running."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        pidfiles.write(tmp_path, "worker", child.pid)
        record = pidfiles.read(tmp_path, "worker")
        # Written right after the fork, as the supervisor does: the cmdline may still be the
        # parent's (exec not done yet); identity is the pid and the start time.
        assert record is not None and record.pid == child.pid
        found = record.process()
        assert found is not None and found.pid == child.pid
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # a zombie, not yet reaped
        assert record.process() is None
    finally:
        child.kill()
        child.wait()


def test_a_record_whose_pid_now_belongs_to_another_process_names_nothing(tmp_path: Path) -> None:
    """The same pid with another start time is a reused pid. Catches: identity by pid alone
    (the reaper would then signal an unrelated process)."""
    pidfiles.write(tmp_path, "api", os.getpid())
    record = pidfiles.read(tmp_path, "api")
    assert record is not None and record.process() is not None
    reused = dataclasses.replace(record, started=record.started - 3600)
    assert reused.process() is None


def test_a_torn_or_foreign_record_is_dropped(tmp_path: Path) -> None:
    """Catches: a half-written or other-version record crashing `make dev`, or being kept."""
    (tmp_path / "relay.json").write_bytes(b'{"name": "relay", "pid": 12')
    (tmp_path / "broker.json").write_bytes(orjson.dumps({"pid": "12", "who": "else"}))
    assert pidfiles.read(tmp_path, "relay") is None
    assert pidfiles.read(tmp_path, "broker") is None
    assert not (tmp_path / "relay.json").exists() and not (tmp_path / "broker.json").exists()
    assert pidfiles.read(tmp_path, "never-written") is None
