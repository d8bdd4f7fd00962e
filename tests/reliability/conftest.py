"""Fixtures for the reliability tests: a fixed code version and one small published quarter."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[1]
for path in (HERE, HERE.parent / "contracts", PROJECT_ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

#: a fixed code version: other engineers commit while the tests run, and hashing the package's
#: source for every run would make two runs of one test differ for reasons outside the test.
CODE = {"package": "test", "git_commit": None, "source_sha256": "reliability-tests"}
QUARTER = "2013Q3"


@pytest.fixture(scope="session")
def code() -> dict:
    return dict(CODE)


# --------------------------------------------------------------------------------------------
# a small synthetic quarter with hostile trust names, published twice

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


@pytest.fixture(scope="session")
def synth_nation(tmp_path_factory) -> Path:
    """The synthetic nation at ``test`` scale, one quarter (about 3 s)."""
    from surveillance.synth.build import synthesise

    root = tmp_path_factory.mktemp("nation")
    synthesise(root, seed=2013, scale="test", quarter=QUARTER, quarters=1)
    return root / QUARTER


@pytest.fixture(scope="session")
def hostile_bundle(synth_nation, tmp_path_factory) -> Path:
    """12 trusts of the test nation, six named with formula or HTML payloads, two such regions."""
    import pandas as pd

    trusts = pd.read_csv(synth_nation / "trusts.csv", dtype=str, keep_default_na=False)
    codes = sorted(trusts["trust_code"])[:N_TRUSTS]
    target = tmp_path_factory.mktemp("hostile") / "data"
    subset_bundle(synth_nation, target, set(codes))
    trusts = pd.read_csv(target / "trusts.csv", dtype=str, keep_default_na=False)
    trusts = trusts.sort_values("trust_code").reset_index(drop=True)
    for i, name in enumerate(HOSTILE_NAMES):
        trusts.loc[i, "trust_name"] = name
    for i, region in enumerate(HOSTILE_REGIONS):
        trusts.loc[len(HOSTILE_NAMES) + i, "region"] = region
    trusts.to_csv(target / "trusts.csv", index=False, lineterminator="\n")
    return target


def run_options(data: Path, out: Path, **kw):
    from surveillance import pipeline

    kw.setdefault("mlflow", False)
    return pipeline.RunOptions(data_dir=data, quarter=QUARTER, out=out, code=CODE, **kw)


@pytest.fixture(scope="session")
def published(hostile_bundle, tmp_path_factory) -> dict[str, Path]:
    """The hostile quarter published twice from the same inputs: ``a`` with MLflow tracking and
    ``b`` without (so the comparison also shows tracking does not touch the outputs)."""
    from surveillance import pipeline

    outs = {}
    for label, mlflow in (("a", True), ("b", False)):
        out = tmp_path_factory.mktemp(f"published-{label}")
        pipeline.run_quarter(run_options(hostile_bundle, out, mlflow=mlflow))
        outs[label] = out
    return outs
