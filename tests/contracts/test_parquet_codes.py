"""Spells' code columns read from Parquet as categoricals give the same violations as CSV text."""

from __future__ import annotations

import pandas as pd
from contract_bundle import QUARTER, valid_frames, write_bundle

from surveillance.bundle import DICTIONARY_COLUMNS, read_bundle
from surveillance.catalogue import load_catalogue
from surveillance.contracts import validate_bundle


def _keys(violations) -> list[tuple]:
    return [(v.rule, v.column, v.rows) for v in violations]


def test_dictionary_codes_checked_like_text(tmp_path):
    frames = valid_frames()
    spells = frames["spells"].copy()
    spells.loc[0, "sex"] = "X"  # not an allowed value
    spells.loc[1, "trust_code"] = "NOPE"  # unknown trust
    spells.loc[2, "admission_method"] = "  "  # blank: required
    spells.loc[3, "diagnosis_group"] = None  # missing: required
    frames["spells"] = spells
    catalogue = load_catalogue()
    csv = validate_bundle(read_bundle(write_bundle(tmp_path / "csv", frames)), QUARTER, catalogue)
    bundle = read_bundle(write_bundle(tmp_path / "pq", frames, parquet=("spells",)))
    for column in DICTIONARY_COLUMNS["spells"]:
        assert isinstance(bundle.spells[column].dtype, pd.CategoricalDtype), column
    parquet = validate_bundle(bundle, QUARTER, catalogue)
    expected = {
        ("allowed_values", "sex", (1,)),
        ("unknown_trust", "trust_code", (2,)),
        ("required", "admission_method", (3,)),
        ("required", "diagnosis_group", (4,)),
    }
    assert expected <= set(_keys(csv)), _keys(csv)
    assert _keys(parquet) == _keys(csv)
    assert [v.file for v in parquet] == ["spells.parquet"] * len(parquet)


def test_valid_parquet_spells_pass_and_keep_their_codes(tmp_path):
    frames = valid_frames()
    bundle = read_bundle(write_bundle(tmp_path, frames, parquet=("spells",)))
    assert validate_bundle(bundle, QUARTER, load_catalogue()) == []
    got = bundle.spells["trust_code"].astype(str).tolist()
    assert got == frames["spells"]["trust_code"].astype(str).tolist()
