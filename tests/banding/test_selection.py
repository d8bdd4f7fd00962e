"""The quarterly run bands with the banding selection it names (issue 14, bug 2): a selection
whose cqc2013 config has other cut-points changes the bands (pipeline.band used to build the
default CQC2013Model whatever the selection said)."""

from __future__ import annotations

import shutil
from pathlib import Path

from test_replica import CUTS, hand_flags, hand_trusts

from surveillance import pipeline
from surveillance.banding.config import MODELS_DIR


def _selection(tmp_path: Path, cuts: tuple[float, ...]) -> Path:
    folder = tmp_path / "banding"
    shutil.copytree(MODELS_DIR, folder)
    cfg = folder / "cqc2013.yaml"
    lines = [
        f"cut_points: [{', '.join(map(str, cuts))}]" if line.startswith("cut_points:") else line
        for line in cfg.read_text().splitlines()
    ]
    cfg.write_text("\n".join(lines) + "\n")
    return folder / "banding.yaml"


def test_band_uses_the_selected_cqc2013_config(tmp_path):
    flags, trusts = hand_flags(), hand_trusts()
    default = pipeline.band(flags, trusts, "2013Q3").set_index("trust_code")["band"]
    chosen = pipeline.band(flags, trusts, "2013Q3", None, _selection(tmp_path, CUTS))
    chosen = chosen.set_index("trust_code")["band"]
    # C scores P = 0.15: band 3 under the selection's cut-points (0.30, 0.20, 0.12, ...), band 1
    # under the shipped ones (0.1296, ...)
    assert chosen["C"] == "3" and default["C"] == "1"
    assert chosen[["A", "B", "E", "F"]].tolist() == ["1", "2", "5", "6"]


def test_run_options_name_the_selection_the_band_stage_reads(tmp_path):
    path = _selection(tmp_path, CUTS)
    opts = pipeline.RunOptions(
        data_dir=tmp_path,
        quarter="2013Q3",
        out=tmp_path / "out",
        model_configs={"banding/banding.yaml": path},
    )
    assert pipeline.banding_config_path(opts.resolved()) == path
    # without a choice the shipped selection is read
    default = pipeline.RunOptions(data_dir=tmp_path, quarter="2013Q3", out=tmp_path / "out")
    assert pipeline.banding_config_path(default.resolved()) == MODELS_DIR / "banding.yaml"
