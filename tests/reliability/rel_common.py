"""Constants and helpers shared by the reliability tests (a unique module name: several test
directories have a ``conftest`` module)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[1]
for path in (HERE, HERE.parent / "contracts", PROJECT_ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

#: a fixed code version: other engineers commit while the tests run, and hashing the package's
#: source for every run would make two runs of one test differ for reasons outside the test.
CODE = {"package": "test", "git_commit": None, "source_sha256": "reliability-tests"}
QUARTER = "2013Q3"
N_TRUSTS = 12
#: trust names and regions a spreadsheet or a browser would execute if written raw.
HOSTILE_NAMES = [
    "=cmd|' /C calc'!A0",
    "+SUM(1+1)*cmd|' /C calc'!A0 NHS Trust",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    '<script>alert("x")</script> Hospital NHS Trust',
    '"><img src=x onerror=alert(1)> NHS Trust',
]
HOSTILE_REGIONS = ['<b>Nowhere</b> & "Co"', "../../../tmp/escape"]


def subset_bundle(source: Path, target: Path, codes: set[str]) -> None:
    """Copy a bundle keeping only the rows of ``codes`` (every file has ``trust_code``)."""
    import pandas as pd
    import pyarrow.parquet as pq

    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame = frame[frame["trust_code"].isin(codes)]
            frame.to_csv(target / path.name, index=False, lineterminator="\n")
        elif path.suffix == ".parquet":
            table = pq.read_table(path)
            keep = table.column("trust_code").to_pandas().astype(str).isin(codes).to_numpy()
            pq.write_table(table.filter(keep), target / path.name)


def run_options(data: Path, out: Path, **kw):
    """Run options for a reliability test run: fixed code version, no MLflow unless asked."""
    from surveillance import pipeline

    kw.setdefault("mlflow", False)
    return pipeline.RunOptions(data_dir=data, quarter=QUARTER, out=out, code=CODE, **kw)
