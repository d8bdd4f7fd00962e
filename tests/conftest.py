"""Shared fixtures. `shared_dir` points at ../shared when present (oracles, real data).

`prefect_harness` is the one Prefect server of a test session: every test that orchestrates
(the flow tests and the CLI-level tests, and the subprocesses they start, which inherit
``PREFECT_API_URL``) uses it instead of starting its own; it is stopped, and checked to have
exited, when the session ends, and dies with the session's process if that is killed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(
            "../shared is not present beside the project (oracles and real data live there)"
        )
    return SHARED


@pytest.fixture(scope="session")
def oracle_dir(shared_dir: Path) -> Path:
    path = shared_dir / "oracles"
    if not path.is_dir():
        pytest.skip("../shared/oracles is not present")
    return path


def _set_env(name: str, value: str | None) -> str | None:
    previous = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    return previous


@pytest.fixture(scope="session", autouse=True)
def stage_cache(tmp_path_factory) -> Path:
    """The flows' stage cache (``SURVEILLANCE_CACHE_DIR``) in the session's temporary folder."""
    path = tmp_path_factory.mktemp("stage-cache")
    previous = _set_env("SURVEILLANCE_CACHE_DIR", str(path))
    yield path
    _set_env("SURVEILLANCE_CACHE_DIR", previous)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory) -> str:
    """One Prefect server (temporary SQLite database) for the whole session; its API URL.

    Started by the CLI's own :func:`flows.server.prefect_api` (so it dies with this process),
    with the database in the session's temporary folder; ``PREFECT_API_URL`` is set in Prefect's
    settings and exported, so a ``surveillance run`` in a subprocess uses it too.
    """
    import contextlib
    import sys

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if str(PROJECT_ROOT) not in sys.path:  # `flows` lives at the project root
        sys.path.insert(0, str(PROJECT_ROOT))
    import prefect.context
    from prefect.server.database.dependencies import temporary_database_interface
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_DATABASE_CONNECTION_URL,
        temporary_settings,
    )

    from flows.server import prefect_api

    database = tmp_path_factory.mktemp("prefect") / "prefect.db"
    previous = _set_env("PREFECT_API_URL", None)
    with contextlib.ExitStack() as stack:
        stack.enter_context(temporary_database_interface())
        stack.enter_context(
            temporary_settings(
                updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{database}"},
                restore_defaults={PREFECT_API_URL},
            )
        )
        servers: list = []
        url = stack.enter_context(prefect_api(lambda line: None, started=servers.append))
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: url}))
        stack.enter_context(
            prefect.context._temporary_global_settings_context(
                prefect.context.get_settings_context()
            )
        )
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:
            _set_env("PREFECT_API_URL", previous)
    process = servers[0]
    assert process.poll() is not None, (
        f"the session's Prefect server (pid {process.pid}) outlived it"
    )
