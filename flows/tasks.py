"""Prefect tasks: one call each into :mod:`surveillance.pipeline`, plus their cache policy.

Caching (Prefect 3 cache policies): a stage's key is the run fingerprint (sha256 of every input
file, the catalogue, the model configurations and the code version, :func:`fingerprint`) combined
with Prefect's ``INPUTS`` policy over the task's small parameters (quarter, flags); the large
in-memory arguments (bundle, frames) are excluded from ``INPUTS`` because they are fully
determined by the fingerprint and hashing them would cost more than recomputing. Results are
persisted (zlib-compressed pickle) under the run's working directory, outside ``--out``
(:func:`flows.quarterly.work_directory`), so a rerun after a failure finds the finished stages
there and resumes at the one that failed. The working directory is deleted once the quarter is
published. The fingerprint includes the published quarters the run reads (last quarter's
bands and flags, the band history), so ``assess`` and ``band`` are never taken from a cache
made against another previous quarter.

Reading and validating the bundle are not cached: their result is the bundle itself (spells
included), cheaper to read again than to pickle. Retries are on the I/O tasks only (hashing inputs, reading the bundle, publishing): a transient
file-system error is worth a second try, a statistical stage that raised will raise again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS, NO_CACHE, CacheKeyFnPolicy, CachePolicy
from prefect.context import TaskRunContext
from prefect.filesystems import LocalFileSystem
from prefect.serializers import CompressedSerializer, PickleSerializer

from surveillance import pipeline

IO_RETRIES = 2
IO_RETRY_DELAY = 2.0
#: cached stage results: pickles compressed with zlib (quick; the mortality stage's pickle is
#: mostly repeated structure)
RESULT_SERIALIZER = CompressedSerializer(serializer=PickleSerializer(), compressionlib="zlib")


def _fingerprint_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    """Custom key: the run fingerprint passed to every cached stage as ``key``."""
    key = parameters.get("key")
    return f"{context.task.name}:{key}" if key else None


def stage_cache_policy(large: tuple[str, ...] = ()) -> CachePolicy:
    """``INPUTS`` (minus the large arguments) + the fingerprint key."""
    inputs = INPUTS
    for name in large:
        inputs = inputs - name
    return inputs + CacheKeyFnPolicy(cache_key_fn=_fingerprint_key)


def result_storage(work_dir: Path) -> LocalFileSystem:
    """A LocalFileSystem block for ``<work_dir>/results``, saved server-side.

    Prefect needs result storage saved as a block so that task runs anywhere (Dask workers
    included) can load it by reference; the block name is derived from the path.
    """
    path = str((Path(work_dir) / "results").resolve())
    name = "surveillance-work-" + hashlib.sha256(path.encode()).hexdigest()[:16]
    storage = LocalFileSystem(basepath=path)
    storage.save(name, overwrite=True)
    return storage


def with_storage(task_obj: Any, storage: LocalFileSystem, large: tuple[str, ...] = ()) -> Any:
    """The task with its cache policy and the run's result storage."""
    return task_obj.with_options(
        cache_policy=stage_cache_policy(large),
        persist_result=True,
        result_storage=storage,
        result_serializer=RESULT_SERIALIZER,
    )


# ------------------------------------------------------------------ I/O tasks (retried)


def _transient(task_obj, task_run, state) -> bool:
    """Retry an I/O task only when it failed with an ``OSError`` (not a refusal or a bug)."""
    try:
        state.result()
    except OSError:
        return True
    except BaseException:  # noqa: BLE001 - any other failure is final
        return False
    return False


_IO = {
    "retries": IO_RETRIES,
    "retry_delay_seconds": IO_RETRY_DELAY,
    "retry_condition_fn": _transient,
    "cache_policy": NO_CACHE,
    "persist_result": False,
}


@task(name="fingerprint", **_IO)
def fingerprint(options: pipeline.RunOptions) -> pipeline.Fingerprint:
    return pipeline.fingerprint(options)


@task(name="load", **_IO)
def load(data_dir: str, spells: str, key: str):
    return pipeline.load(Path(data_dir), spells)


@task(name="catalogue", **_IO)
def catalogue(path: str, key: str):
    return pipeline.load_catalogue(Path(path))


@task(name="publish", **_IO)
def publish(options, fp, results, catalogue_frame, timings, extra) -> str:
    return str(
        pipeline.write_and_publish(
            options, fp, results, catalogue_frame, timings, extra, hold_lock=False
        )
    )


@task(name="mlflow", **_IO)
def track(out: str, fp, flags, bands, mortality_result) -> dict:
    return pipeline.track(Path(out), fp, flags, bands, mortality_result)


# ------------------------------------------------------------------ compute tasks (no retries)


@task(name="assemble")
def assemble(bundle, catalogue_frame, quarter: str, key: str):
    return pipeline.assemble_sources(bundle, catalogue_frame, quarter)


@task(name="validate", cache_policy=NO_CACHE, persist_result=False)
def validate(
    bundle, assembly, catalogue_frame, quarter: str, quarantine: bool, key: str, checked=False
):
    return pipeline.validate(bundle, assembly, catalogue_frame, quarter, quarantine, checked)


@task(name="derive")
def derive(validated, catalogue_frame, quarter: str, key: str):
    return pipeline.derive(validated.bundle, catalogue_frame, quarter)


@task(name="mortality")
def mortality(validated, catalogue_frame, quarter: str, key: str):
    return pipeline.mortality(validated.bundle, catalogue_frame, quarter)


@task(name="assess")
def assess(
    validated, derived, mortality_result, assembly, catalogue_frame, quarter, previous_flags, key
):
    return pipeline.assess_flags(
        validated, derived, mortality_result, assembly, catalogue_frame, quarter, previous_flags
    )


@task(name="band")
def band(flags, trusts, quarter: str, previous_bands, key: str, config_path=None):
    return pipeline.band(flags, trusts, quarter, previous_bands, config_path)


#: large arguments per cached task (excluded from INPUTS, covered by the fingerprint key).
LARGE = {
    "assemble": ("bundle", "catalogue_frame"),
    "derive": ("validated", "catalogue_frame"),
    "mortality": ("validated", "catalogue_frame"),
    "assess": (
        "validated",
        "derived",
        "mortality_result",
        "assembly",
        "catalogue_frame",
        "previous_flags",
    ),
    "band": ("flags", "trusts", "previous_bands"),
}
