"""Which Prefect API a run talks to, and the life of the embedded server when there is none.

With ``PREFECT_API_URL`` configured (environment or Prefect profile) the run uses that server and
starts nothing. Otherwise Prefect would start its embedded server lazily, at the first API call,
silently (10-60 s on a busy machine) and leave it to an ``atexit`` hook: a killed run left it
running. :func:`prefect_api` starts it up front instead, says what it is waiting for and how to
avoid the wait, registers it as Prefect's default ephemeral server (so Prefect's own clients use
it rather than starting another), asks the kernel to stop it if this process dies
(``PR_SET_PDEATHSIG``), and stops it when the block ends, however it ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

_PR_SET_PDEATHSIG = 1  # linux/prctl.h

AVOID_WAIT = (
    "to skip this wait, run one server (`prefect server start`) and export "
    "PREFECT_API_URL=http://127.0.0.1:4200/api"
)


def configured_api_url() -> str | None:
    """``PREFECT_API_URL`` from the environment or the active Prefect profile, if any."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before prctl: do not outlive it
        os._exit(0)


def embedded_server_class() -> type:
    """Prefect's ``SubprocessASGIServer`` whose uvicorn process dies with this process."""
    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    class EmbeddedServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            # as SubprocessASGIServer._run_uvicorn_command (Prefect 3.x), plus the death signal
            server_env = {
                "PREFECT_UI_ENABLED": "0",
                "PREFECT__SERVER_EPHEMERAL": "1",
                "PREFECT__SERVER_FINAL": "1",
            }
            return subprocess.Popen(
                args=[
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--app-dir",
                    str(prefect.__module_path__.parent),
                    "--factory",
                    "prefect.server.api.server:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "error",
                    "--lifespan",
                    "on",
                ],
                env={
                    **os.environ,
                    **server_env,
                    **get_current_settings().to_environment_variables(exclude_unset=True),
                },
                preexec_fn=_die_with_parent,
            )

    return EmbeddedServer


@contextlib.contextmanager
def prefect_api(
    say: Callable[[str], None] = print,
    started: Callable[[subprocess.Popen[Any]], None] | None = None,
) -> Iterator[str]:
    """The Prefect API URL for the block: the configured one, or an embedded server's.

    ``say`` receives plain progress lines (what the run waits for, how long it took);
    ``started``, if given, the embedded server's process once it answers (tests check it ends).
    """
    url = configured_api_url()
    if url:
        say(f"Prefect API: {url}")
        yield url
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    timeout = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    say(
        "starting Prefect's embedded server (about 10 s on an idle machine, a minute or more on "
        f"a busy one; waiting up to {timeout} s): {AVOID_WAIT}"
    )
    t0 = time.perf_counter()
    server_class = embedded_server_class()
    server = server_class(port=_free_port())
    prior = SubprocessASGIServer._instances.get(None)
    SubprocessASGIServer._instances[None] = server  # what Prefect's clients look up
    try:
        server.start(timeout=timeout)
        say(f"Prefect server ready in {time.perf_counter() - t0:.1f} s ({server.api_url})")
        if started is not None:
            started(server.server_process)
        yield server.api_url
    finally:
        _drain_logs()
        server.stop()
        if prior is not None:
            SubprocessASGIServer._instances[None] = prior
        else:
            SubprocessASGIServer._instances.pop(None, None)


def _free_port() -> int:
    import socket

    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _drain_logs() -> None:
    """Send buffered flow-run logs before the server stops (as ``prefect_test_harness`` does)."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        with contextlib.suppress(RuntimeError):  # the worker never started
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    with contextlib.suppress(Exception):  # best effort: the run's outcome is already decided
        run_coro_as_sync(drain())
