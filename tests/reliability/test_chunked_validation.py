"""The spells contract checked chunk by chunk (the Dask and streamed runs) reports exactly what the
whole-file check reports, for every malformed bundle of the bad-input catalogue.

Each case's spells are rewritten as Parquet with row groups of 3 rows (the chunks), text cells
kept as text, so violations and duplicate ids fall in different chunks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import rel_common  # noqa: F401  (puts the contract fixtures on sys.path)
from bad_bundles import CASES, Case

from surveillance.bundle import read_bundle
from surveillance.catalogue import load_catalogue
from surveillance.contracts import validate_bundle
from surveillance.errors import ContractError
from surveillance.spell_engine import StreamChunks, validate_spells

QUARTER = rel_common.QUARTER


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def _as_chunked_parquet(data: Path) -> bool:
    """Rewrite spells.csv as spells.parquet in 3-row row groups; False if there is no such CSV."""
    csv = data / "spells.csv"
    if not csv.is_file() or (data / "spells.parquet").exists():
        return False
    try:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return False
    frame.to_parquet(data / "spells.parquet", index=False, row_group_size=3)
    csv.unlink()
    return True


def _outcome(check):
    try:
        return check()
    except ContractError as exc:
        return ("error", exc.violations)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_chunked_check_equals_whole_file_check(case: Case, tmp_path: Path, catalogue) -> None:
    data = tmp_path / "data"
    case.build(data)
    if not _as_chunked_parquet(data):
        pytest.skip("the case has no readable spells.csv to split into row groups")

    def whole():
        return validate_bundle(read_bundle(data), QUARTER, catalogue)

    def chunked():
        bundle = read_bundle(data, lazy_spells=True)
        source = bundle.spells_source
        assert bundle.spells is None and (len(source.chunks) > 1 or source.n_rows == 0)
        chunks = StreamChunks(bundle.spells_source)
        return validate_bundle(
            bundle,
            QUARTER,
            catalogue,
            chunked_spells=lambda known: validate_spells(chunks, QUARTER, catalogue, known),
        )

    want, got = _outcome(whole), _outcome(chunked)
    assert got == want


def test_duplicate_ids_in_different_chunks_are_found(tmp_path: Path, catalogue) -> None:
    from contract_bundle import valid_frames, write_bundle

    frames = valid_frames()
    spells = frames["spells"].astype(str)
    n = len(spells)
    assert n >= 4
    spells.loc[n - 1, "spell_id"] = spells.loc[0, "spell_id"]  # first and last chunk
    frames["spells"] = spells
    data = write_bundle(tmp_path / "data", frames)
    (data / "spells.csv").unlink()
    spells.to_parquet(data / "spells.parquet", index=False, row_group_size=2)
    bundle = read_bundle(data, lazy_spells=True)
    found = validate_spells(StreamChunks(bundle.spells_source), QUARTER, catalogue, None)
    dup = [v for v in found if v.rule == "unique_key"]
    assert len(dup) == 1 and dup[0].rows == (1, n) and dup[0].column == "spell_id"


def test_many_bad_rows_across_chunks_merge_into_one_violation(tmp_path: Path, catalogue) -> None:
    """More offending rows than are listed: the first rows in file order, the total counted."""
    from contract_bundle import valid_frames, write_bundle

    from surveillance.contracts import MAX_ROWS_PER_RULE

    frames = valid_frames()
    base = frames["spells"].astype(str)
    spells = pd.concat([base] * 30, ignore_index=True)
    spells["spell_id"] = [f"S{i:05d}" for i in range(len(spells))]
    spells.loc[spells.index % 4 == 1, "age"] = "150"
    spells.loc[[3, len(spells) - 2], "sex"] = "X"
    frames["spells"] = spells
    data = write_bundle(tmp_path / "data", frames)
    (data / "spells.csv").unlink()
    spells.to_parquet(data / "spells.parquet", index=False, row_group_size=7)
    want = validate_bundle(read_bundle(data), QUARTER, catalogue)
    bundle = read_bundle(data, lazy_spells=True)
    got = validate_bundle(
        bundle,
        QUARTER,
        catalogue,
        chunked_spells=lambda known: validate_spells(
            StreamChunks(bundle.spells_source), QUARTER, catalogue, known
        ),
    )
    assert got == want
    age = next(v for v in got if v.rule == "age_range")
    assert age.rows == tuple(range(2, 4 * MAX_ROWS_PER_RULE + 2, 4))
    assert age.message.endswith(f"[{len(spells) // 4} row(s)]")


def test_string_hashes_are_equal_exactly_for_equal_strings() -> None:
    import numpy as np

    from surveillance.spell_engine import string_hashes

    values = ["S1", "S1", "", None, "é", "S10", "1S", "S1 ", "x" * 40, "x" * 40, "7"]
    hashes, present = string_hashes(pd.Series(values, dtype=object))
    assert present.tolist() == [v is not None for v in values]
    assert hashes[0] == hashes[1] and hashes[8] == hashes[9]
    others = [hashes[i] for i in (0, 2, 4, 5, 6, 7, 8, 10)]
    assert len(set(others)) == len(others)
    arrow = pd.Series([v if v is None else str(v) for v in values], dtype="string[pyarrow]")
    assert np.array_equal(string_hashes(arrow)[0], hashes)
    numbers = string_hashes(pd.Series([7, 7, 8]))[0]
    assert numbers[0] == numbers[1] == hashes[10] and numbers[2] != numbers[0]
