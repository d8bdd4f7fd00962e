"""What the CLI prints, without running a quarter (issue 17, item 5)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from surveillance import cli


def _bands(run_dir: Path) -> pd.DataFrame:
    rows = []
    for i in range(20):
        rows.append(
            {
                "trust_code": f"R{i:02d}",
                "trust_name": f"The Royal Wolverhampton and Cannock Chase Hospitals NHS Trust {i}",
                "region": "Yorkshire and the Humber",
                "risks": str(i),
                "elevated_risks": str(i % 3),
                "proportion_score": f"{0.5 - i / 100:.3f}",
                "band": str(1 + i % 6),
                "p_band_1": "0.25",
                "previous_band": str(1 + (i + 1) % 6),
                "movement": "up",
            }
        )
    frame = pd.DataFrame(rows)
    run_dir.mkdir(parents=True)
    frame.to_csv(run_dir / "bands.csv", index=False)
    return frame


def test_band_table_is_one_line_per_trust_at_80_columns(tmp_path: Path) -> None:
    bands = _bands(tmp_path / "2013Q3")
    console = Console(width=80, record=True, force_terminal=False)
    cli._print_band_table(console, tmp_path / "2013Q3", rows=15)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    shown = [line for line in lines if any(f"R{i:02d} " in line for i in range(20))]
    assert len(shown) == 15  # every trust on exactly one line
    # ranked: band 1 first, highest proportion score first within a band
    order = bands.assign(b=bands["band"].astype(int), p=bands["proportion_score"].astype(float))
    expected = order.sort_values(["b", "p"], ascending=[True, False])["trust_code"].head(15)
    assert [line.split()[1] for line in shown] == expected.tolist()


def test_summary_and_checks_print_the_input_notes(tmp_path: Path, capsys) -> None:
    """Issue 17, item 3: the run says what it accepted but converted or does not know."""
    from surveillance.bundle import InputNote
    from surveillance.pipeline import RunSummary

    note = InputNote("trusts.csv", "region", "normalised", "'london' read as 'London'", 1)
    cli._print_notes([note])
    printed = capsys.readouterr().out
    assert "1 input note(s) (accepted; recorded in the run's manifest):" in printed
    assert "trusts.csv column 'region': [normalised] 'london' read as 'London' (1 row(s))" in (
        printed
    )
    summary = RunSummary(
        run_dir=tmp_path,
        run_id="2013Q3-0",
        quarter="2013Q3",
        band_counts={"1": 1},
        new_alerts=0,
        movers=pd.DataFrame(columns=["trust_code", "previous_band", "band"]),
        report=None,
        missing_sources=[],
        excluded=[],
        quarantined=0,
        seconds=1.0,
        input_notes=[str(note)],
    )
    console = Console(width=200, record=True, force_terminal=False)
    cli._print_summary(console, summary)
    text = console.export_text()
    assert "input notes (1, in manifest.json)" in text
    assert "[normalised]" in text and "'London'" in text
