"""Run one quarter in this process and SIGKILL it when a named stage starts (a test hook).

    python fault_runner.py DATA OUT QUARTER STAGE [cli]

``STAGE`` is an attribute of :mod:`surveillance.pipeline` (``fingerprint``, ``load``,
``validate``, ``mortality``, ``write_outputs``, ``render_reports``, ``finish_manifest``, ...) or
of :mod:`surveillance.store` prefixed ``store.`` (``store.publish``: killed just before the
rename; ``store.register_run``: just after it), or ``none`` for an uninterrupted run. The
function is replaced by one that kills the process with SIGKILL (no cleanup, no ``finally``), as
an operator's ``kill -9`` or the OOM killer would. The run uses the fixed code version of the
reliability tests, no MLflow, reports on.

With ``cli`` the quarter runs through ``surveillance run`` (the Prefect flow, its result cache in
outside ``--out`` and its Prefect server) instead of :func:`surveillance.pipeline.run_quarter`;
the Prefect tasks call the same :mod:`surveillance.pipeline` functions, so the same stage names
apply (and ``current_code_version`` is pinned to the tests' fixed version).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _killer(name: str):
    def kill(*args, **kwargs):
        sys.stdout.write(f"killed at {name}\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    return kill


def main(data: str, out: str, quarter: str, stage: str, mode: str = "pipeline") -> int:
    sys.path.insert(0, str(HERE))
    from rel_common import CODE

    from surveillance import pipeline, store

    if stage != "none":
        module, name = (store, stage[6:]) if stage.startswith("store.") else (pipeline, stage)
        if not hasattr(module, name):
            raise SystemExit(f"unknown stage {stage}")
        setattr(module, name, _killer(stage))
    if mode == "cli":
        from surveillance.cli import app

        pipeline.current_code_version = lambda: dict(CODE)
        args = ["run", "--data", data, "--quarter", quarter, "--out", out, "--no-mlflow"]
        code = app(args, standalone_mode=False)
        if code:
            return int(code)
        sys.stdout.write(f"published {out}/{quarter}\n")
        return 0
    options = pipeline.RunOptions(
        data_dir=Path(data), quarter=quarter, out=Path(out), mlflow=False, code=CODE
    )
    summary = pipeline.run_quarter(options)
    sys.stdout.write(f"published {summary.run_dir}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:6]))
