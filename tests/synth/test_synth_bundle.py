"""The synthetic bundle: passes the contracts, trusts and inspections are coherent, same bytes."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from surveillance.bundle import read_bundle
from surveillance.catalogue import load_catalogue
from surveillance.cli import app
from surveillance.contracts import check_bundle
from surveillance.synth import BUNDLE_FILES

SEED, QUARTER, PREVIOUS = 2013, "2013Q3", "2013Q2"  # as in conftest.py


@pytest.mark.parametrize("quarter", [PREVIOUS, QUARTER])
def test_bundle_passes_contracts(nation_dir, quarter):
    check_bundle(read_bundle(nation_dir / quarter), quarter, load_catalogue())


def test_every_bundle_file_written(nation_dir):
    for q in (PREVIOUS, QUARTER):
        for name in BUNDLE_FILES:
            assert (nation_dir / q / name).stat().st_size > 0, (q, name)


def test_trusts(nation_dir, truth):
    t = pd.read_csv(nation_dir / QUARTER / "trusts.csv", dtype=str, keep_default_na=False)
    assert len(t) == 161 and t["trust_code"].is_unique and t["trust_name"].is_unique
    assert all(re.fullmatch(r"R[2-9][0-9A-Z]", c) for c in t["trust_code"])
    assert (t["trust_type"] == "acute_specialist").sum() == 20
    assert t["region"].nunique() == 10
    assert t["trust_name"].str.endswith((" NHS Trust", " NHS Foundation Trust")).all()
    ft = t["foundation_trust"] == "True"
    assert t.loc[ft, "trust_name"].str.endswith("NHS Foundation Trust").all()
    assert 0.45 < ft.mean() < 0.75
    # Keogh: 11 trusts in special measures from 16 July 2013, so in 2013Q3 but not in 2013Q2.
    assert (t["special_measures"] == "True").sum() == 11
    prev = pd.read_csv(nation_dir / PREVIOUS / "trusts.csv", dtype=str, keep_default_na=False)
    assert (prev["special_measures"] == "True").sum() == 0
    assert set(t.loc[t["special_measures"] == "True", "trust_code"]) == set(
        truth["special_measures_trusts"]
    )
    assert len(truth["failing_trusts"]) == 16  # 10% of 161


@pytest.mark.parametrize("quarter", [PREVIOUS, QUARTER])
def test_last_inspection_consistent_with_history(nation_dir, quarter):
    t = pd.read_csv(nation_dir / quarter / "trusts.csv", dtype=str, keep_default_na=False)
    ins = pd.read_csv(nation_dir / quarter / "inspections.csv", dtype=str)
    assert ins["inspection_date"].max() <= pd.Timestamp(_end(quarter)).strftime("%Y-%m-%d")
    assert ins["inspection_date"].min() >= "2009-01-01"
    last = ins.sort_values(["trust_code", "inspection_date"]).groupby("trust_code").tail(1)
    last = last.set_index("trust_code")
    for row in t.itertuples():
        if row.trust_code in last.index:
            assert row.last_inspection_date == last.at[row.trust_code, "inspection_date"]
            assert row.last_rating == last.at[row.trust_code, "overall_rating"]
        else:
            assert row.last_inspection_date == "" and row.last_rating == ""
    per_trust = ins.groupby("trust_code").size()
    assert per_trust.max() >= 3 and 0.1 < (t["last_rating"] == "").mean() < 0.45
    assert set(ins["overall_rating"]) == {
        "Outstanding",
        "Good",
        "Requires improvement",
        "Inadequate",
    }


def _end(quarter: str) -> pd.Timestamp:
    from surveillance.periods import Quarter

    return Quarter.parse(quarter).end


def test_same_seed_same_bytes_and_window_invariance(nation_dir, tmp_path):
    """A one-quarter build through the CLI reproduces the fixture's 2013Q3 bundle byte for byte."""
    out = tmp_path / "again"
    args = ["synth", "--seed", str(SEED), "--scale", "test", "--quarter", QUARTER]
    result = CliRunner().invoke(app, [*args, "--quarters", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in BUNDLE_FILES:
        a = (nation_dir / QUARTER / name).read_bytes()
        b = (out / QUARTER / name).read_bytes()
        assert a == b, name


def test_different_seed_different_data(nation_dir, tmp_path):
    from surveillance.synth import synthesise

    out = tmp_path / "other"
    synthesise(out, seed=SEED + 1, scale="test", quarter=QUARTER, quarters=1)
    for name in BUNDLE_FILES:
        assert (nation_dir / QUARTER / name).read_bytes() != (out / QUARTER / name).read_bytes()


def test_cli_rejects_unknown_scale(tmp_path):
    result = CliRunner().invoke(app, ["synth", "--scale", "huge", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "scale" in result.output


def test_parquet_has_no_timestamps_and_compact_types(nation_dir):
    import pyarrow.parquet as pq

    meta = pq.read_metadata(nation_dir / QUARTER / "spells.parquet")
    schema = pq.read_schema(nation_dir / QUARTER / "spells.parquet")
    assert str(schema.field("age").type) == "int16"
    assert str(schema.field("admission_date").type) == "date32[day]"
    keys = {k.decode() for k in (meta.metadata or {})}
    assert keys <= {"ARROW:schema"}, keys  # no pandas metadata, no creation time


@pytest.mark.slow
def test_demo_scale_bundle_validates(tmp_path):
    """The demo scale (~1 million spells over 36 months) builds and passes the contracts."""
    from surveillance.synth import synthesise

    summary = synthesise(tmp_path / "demo", seed=SEED, scale="demo", quarter=QUARTER, quarters=1)
    spells = summary.counts[QUARTER]["spells"]
    assert 900_000 < spells < 1_100_000
    check_bundle(read_bundle(tmp_path / "demo" / QUARTER), QUARTER, load_catalogue())


def test_cli_rejects_quarter_before_epoch(tmp_path):
    result = CliRunner().invoke(
        app, ["synth", "--scale", "test", "--quarter", "2004Q1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "epoch" in result.output


def test_fixed_decimal_formatting_matches_printf():
    import numpy as np

    from surveillance.synth.io import format_fixed

    rng = np.random.default_rng(7)
    # Values away from exact half-way points, where printf and half-away-from-zero agree.
    x = np.round(rng.normal(0, 1000, 2000), 6) + 1e-7
    for d in (0, 1, 2, 4):
        got = format_fixed(pd.Series(x), d).tolist()
        want = [f"{v:.{d}f}" for v in x]
        want = [w.lstrip("-") if float(w) == 0 else w for w in want]  # no "-0"
        assert got == want
    assert format_fixed(pd.Series([np.nan, -0.0004]), 3).tolist() == [None, "0.000"]
