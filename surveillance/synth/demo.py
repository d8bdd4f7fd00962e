"""What ``surveillance demo`` does with the synthetic nation: build if absent, validate, describe."""

from __future__ import annotations

import json
from pathlib import Path

from surveillance.synth.build import BUNDLE_FILES, bundle_quarters, synthesise


def nation_present(out: Path, quarter: str, quarters: int) -> bool:
    """True when ``out`` holds every bundle file for every quarter plus the ground truth."""
    if not (out / "ground_truth.json").is_file():
        return False
    return all(
        (out / str(q) / f).is_file()
        for q in bundle_quarters(quarter, quarters)
        for f in BUNDLE_FILES
    )


def ensure_nation(
    out: Path, seed: int = 2013, scale: str = "demo", quarter: str = "2013Q3", quarters: int = 2
) -> tuple[bool, dict]:
    """Build the nation in ``out`` unless it is already there; return (built, ground truth)."""
    built = False
    if not nation_present(out, quarter, quarters):
        synthesise(out, seed=seed, scale=scale, quarter=quarter, quarters=quarters)
        built = True
    return built, json.loads((out / "ground_truth.json").read_text())


def validate_nation(out: Path, quarters: list[str]) -> dict[str, int]:
    """Run the input contracts on every bundle; raise ``ContractError`` on the first failure.

    Returns the number of violations per quarter (all zero when it returns).
    """
    from surveillance.bundle import read_bundle
    from surveillance.catalogue import load_catalogue
    from surveillance.contracts import check_bundle

    catalogue = load_catalogue()
    result = {}
    for q in quarters:
        check_bundle(read_bundle(out / q), q, catalogue)
        result[q] = 0
    return result


def summary_rows(out: Path, truth: dict) -> list[tuple[str, ...]]:
    """Rows (what, per quarter ...) describing the built nation, for a Rich table."""
    qs = truth["quarters"]
    counts = truth["counts"]
    rows = [
        ("trusts", *(str(counts[q]["trusts"]) for q in qs)),
        ("  of which specialist", *(str(truth["n_specialist"]) for _ in qs)),
        ("  failing (ground truth)", *(str(len(truth["failing_trusts"])) for _ in qs)),
        ("indicator rows", *(f"{counts[q]['indicators']:,}" for q in qs)),
        ("spells (36 months)", *(f"{counts[q]['spells']:,}" for q in qs)),
        ("  30-day deaths", *(f"{counts[q]['deaths_30d']:,}" for q in qs)),
        ("staffing rows", *(f"{counts[q]['staffing']:,}" for q in qs)),
        ("intelligence items", *(f"{counts[q]['intelligence']:,}" for q in qs)),
        ("inspections", *(f"{counts[q]['inspections']:,}" for q in qs)),
        (
            "planted deteriorations",
            *(str(len(truth["planted_deteriorations"]["rows"])) for _ in qs),
        ),
        (
            "bundle size (MB)",
            *(f"{sum((out / q / f).stat().st_size for f in BUNDLE_FILES) / 1e6:.1f}" for q in qs),
        ),
    ]
    return rows
