"""No run keeps its input alive (issue 7, part 6: ten quarters in one process without growth)."""

from __future__ import annotations

import gc
import weakref

from contract_bundle import valid_frames, write_bundle
from rel_common import QUARTER

from surveillance.bundle import read_bundle
from surveillance.catalogue import load_catalogue
from surveillance.contracts import validate_bundle


def test_validated_frames_are_released(tmp_path) -> None:
    """pandera registers each validated frame's schema globally; the schema's checks must not
    hold the frame, or every bundle ever validated stays in memory (found by benchmarks/load.py:
    +20 MiB per test-scale quarter)."""
    frames = valid_frames()
    frames["spells"].loc[0, "sex"] = "X"  # a failing check too (the SchemaErrors path)
    bundle = read_bundle(write_bundle(tmp_path, frames, parquet=("spells",)))
    catalogue = load_catalogue()
    assert validate_bundle(bundle, QUARTER, catalogue)
    refs = [weakref.ref(bundle.table(name)) for name in ("trusts", "indicators", "spells")]
    del bundle
    gc.collect()
    assert [r() is None for r in refs] == [True, True, True]
