"""Task runners: local threads by default, or a Dask cluster through ``prefect-dask``.

``dask`` with an address (``tcp://scheduler:8786``) connects to an existing cluster, whose workers
must have this package installed (the same version: the run id includes the code version); without
an address a ``distributed.LocalCluster`` of 2 single-threaded workers is started for the run and
closed after it. The outputs are the same whichever runner is used: every stage is deterministic
and the tables are written in a fixed row order.
"""

from __future__ import annotations

from typing import Any

LOCAL_WORKERS = 2


def check_runner(runner: str = "local", dask_address: str | None = None) -> None:
    """Raise ``ValueError`` for a runner / address combination :func:`task_runner` refuses
    (without importing Prefect, so the CLI refuses at once)."""
    if runner not in ("local", "dask"):
        raise ValueError(f"--runner must be local or dask, got {runner!r}")
    if runner == "local" and dask_address:
        raise ValueError("--dask-address needs --runner dask")
    if dask_address and not dask_address.startswith(
        ("tcp://", "tls://", "ws://", "wss://", "inproc://")
    ):
        raise ValueError(f"--dask-address must look like tcp://host:8786, got {dask_address!r}")


def task_runner(runner: str = "local", dask_address: str | None = None) -> Any:
    """The Prefect task runner for ``--runner local|dask`` (and ``--dask-address``)."""
    check_runner(runner, dask_address)
    if runner == "local":
        if dask_address:
            raise ValueError("--dask-address needs --runner dask")
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=2)
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            if not dask_address.startswith(("tcp://", "tls://", "ws://", "wss://", "inproc://")):
                raise ValueError(
                    f"--dask-address must look like tcp://host:8786, got {dask_address!r}"
                )
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={
                "n_workers": LOCAL_WORKERS,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            },
        )
    raise ValueError(f"--runner must be local or dask, got {runner!r}")
