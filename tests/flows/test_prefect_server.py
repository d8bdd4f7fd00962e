"""No Prefect server outlives a run (issue 17, item 4).

``surveillance run`` without ``PREFECT_API_URL`` starts Prefect's embedded server up front, says
what it waits for and how to avoid the wait, and stops it when it ends; if the run is killed
(SIGKILL, no clean-up) the kernel stops the server too (``PR_SET_PDEATHSIG``). Each run here is
a real process in its own session, and afterwards no process of that session may be left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: the tests that start Prefect's embedded server in a fresh process (15-60 s on 2 shared cores)
slow = pytest.mark.slow


def session_processes(sid: int) -> list[tuple[int, str]]:
    """Live (not zombie) processes of session ``sid``: ``(pid, command name)``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append((int(entry.name), name))
    return sorted(found)


def _left_after(sid: int, seconds: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + seconds
    while (left := session_processes(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _start(small_bundles, out: Path, stdout) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    args = ["--data", str(small_bundles["2013Q2"]), "--quarter", "2013Q2", "--out", str(out)]
    return subprocess.Popen(
        [sys.executable, "-m", "surveillance.cli", "run", *args, "--no-mlflow"],
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "COLUMNS": "200"},
        start_new_session=True,
    )


def _kill_session(sid: int) -> None:
    for pid, _ in session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_telemetry_and_its_notice_are_off(monkeypatch) -> None:
    """The CLI turns Prefect's SDK telemetry (and its first-run notice) off unless asked."""
    for name in ("DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED"):
        monkeypatch.setenv(name, "")  # recorded, so the session's environment is restored after
        monkeypatch.delenv(name)
    from prefect._internal.analytics import ci_detection, enabled

    from surveillance import cli

    monkeypatch.setattr(enabled, "is_ci_environment", lambda: False)  # as on a desk, not CI
    monkeypatch.setattr(ci_detection, "is_ci_environment", lambda: False)
    assert enabled.is_telemetry_enabled()  # what a user got before
    cli._flows()
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert not enabled.is_telemetry_enabled()


@slow
def test_a_finished_run_leaves_no_server(small_bundles, tmp_path) -> None:
    log = tmp_path / "run.log"
    with log.open("w") as stdout:
        proc = _start(small_bundles, tmp_path / "out", stdout)
        try:
            assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
            left = _left_after(proc.pid, 15)
        finally:
            _kill_session(proc.pid)
    output = log.read_text()
    assert left == [], f"left running after the run: {left}"
    assert "starting Prefect's embedded server" in output
    assert "export PREFECT_API_URL=" in output  # how to avoid the wait
    assert "Prefect server ready in" in output
    assert "Traceback" not in output
    assert (tmp_path / "out" / "2013Q2" / "bands.csv").is_file()


@slow
def test_a_killed_run_leaves_no_server(small_bundles, tmp_path) -> None:
    """SIGKILL of the run once its server answers: the server goes too (it used to stay)."""
    log = tmp_path / "run.log"
    with log.open("w") as stdout:
        proc = _start(small_bundles, tmp_path / "out", stdout)
        try:
            deadline = time.monotonic() + 300
            while "Prefect server ready" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.2)
            servers = [p for p in session_processes(proc.pid) if p[0] != proc.pid]
            assert servers, "no server process seen"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            left = _left_after(proc.pid, 20)
        finally:
            _kill_session(proc.pid)
    assert left == [], f"left running after SIGKILL of the run: {left}"
    assert not (tmp_path / "out" / "2013Q2").exists()
