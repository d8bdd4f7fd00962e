"""Fixtures for the flow tests: small synthetic bundles (the session's one Prefect server,
``prefect_harness``, is in ``tests/conftest.py``).

The bundles are the synthetic nation at ``test`` scale cut down to a subset of trusts (every table
filtered on ``trust_code``), two consecutive quarters so the second has a previous run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:  # `flows` lives at the project root, beside the package
    sys.path.insert(0, str(PROJECT_ROOT))

QUARTERS = ("2013Q2", "2013Q3")
N_TRUSTS = 40
ROW_GROUP_ROWS = 5_000


def _subset_bundle(source: Path, target: Path, codes: set[str]) -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame[frame["trust_code"].isin(codes)].to_csv(
                target / path.name, index=False, lineterminator="\n"
            )
        elif path.suffix == ".parquet":
            table = pq.read_table(path)
            frame = table.to_pandas()
            keep = frame["trust_code"].astype(str).isin(codes).to_numpy()
            # small row groups: the chunked (Dask) spell-level steps see several partitions
            pq.write_table(table.filter(keep), target / path.name, row_group_size=ROW_GROUP_ROWS)


def _synth_key() -> str:
    """Hash of the synthetic-nation code and data: the cached bundles are rebuilt when it changes."""
    import hashlib

    import surveillance.synth as synth

    digest = hashlib.sha256()
    root = Path(synth.__file__).parent
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".yaml", ".csv"}:
            digest.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    digest.update(f"{QUARTERS}{N_TRUSTS}{ROW_GROUP_ROWS}".encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def small_bundles(request) -> dict[str, Path]:
    """``{quarter: bundle dir}`` for 2013Q2 and 2013Q3, 40 trusts.

    Built once and kept in pytest's cache directory (keyed by the synth code), since generating
    the nation takes longer than all the flow tests together; a file lock serialises xdist workers.
    """
    import fcntl

    import pandas as pd

    from surveillance.synth.build import synthesise

    cache = Path(request.config.cache.mkdir("flows-small-bundles"))
    root = cache / _synth_key()
    bundles = {q: root / "small" / q for q in QUARTERS}
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "complete").is_file():
            import shutil

            shutil.rmtree(root, ignore_errors=True)
            synthesise(root / "full", seed=2013, scale="test", quarter=QUARTERS[-1], quarters=2)
            trusts = pd.read_csv(root / "full" / QUARTERS[-1] / "trusts.csv", dtype=str)
            codes = set(sorted(trusts["trust_code"])[:N_TRUSTS])
            for quarter in QUARTERS:
                _subset_bundle(root / "full" / quarter, bundles[quarter], codes)
            shutil.rmtree(root / "full")
            (root / "complete").write_text("ok\n")
    return bundles


@pytest.fixture(scope="session")
def code_version() -> dict:
    """The code version, computed once: other engineers commit while the tests run."""
    from surveillance.pipeline import current_code_version

    return current_code_version()
