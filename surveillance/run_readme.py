"""Every run folder describes itself: ``README.md`` and ``data_dictionary.csv``.

Both are written by the run, beside the tables, before the manifest (which hashes them), and are
byte-stable: the same run gives the same text. The dictionary lists every column of every CSV
the run published, built from :data:`surveillance.output_contracts.PUBLISHED_COLUMNS` (the one
description of the columns; a column without an entry stops the run). The README says what each
file is, how many rows it has, and that the analytic CSVs hold small numbers and are restricted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from surveillance import store
from surveillance.output_contracts import PUBLISHED_COLUMNS, data_dictionary

DICTIONARY_FILE = "data_dictionary.csv"
README_FILE = "README.md"

#: one line per file the run may publish: what it is
FILE_TEXT: dict[str, str] = {
    "flags.csv": "one row per trust x indicator: the value, its expected value, z-scores and flag",
    "alerts.csv": "mortality alerts: every risk-adjusted CUSUM signal in the 12-month window",
    "mortality.csv": "observed and expected deaths, ratio and funnel limits per trust x "
    "diagnosis group (ALL: every group)",
    "bands.csv": "one row per trust: score, priority band (1 = inspect first), band probabilities",
    "cusum_paths.csv": "the monthly paths of the alerted CUSUM charts (deaths and expected deaths "
    "per month)",
    "explanations.csv": "the indicators that drive each trust's score, ranked",
    "excluded_indicators.csv": "indicators left out of banding this quarter and why",
    "sources.csv": "publishers' feeds read for the quarter: status, file and hash",
    "staffing_wards.csv": "wards and their registered-nurse fill rates",
    "band_history.csv": "bands of earlier quarters",
    "quarantine.csv": "input rows set aside (with --quarantine) and the rule each broke",
    DICTIONARY_FILE: "every column of every CSV here: meaning, unit, type, whether it may hold "
    "small numbers",
}


#: what a run writes besides its CSVs
OTHER_TEXT: dict[str, str] = {
    "manifest.json": "what the run was made from: input hashes, configuration, code, outputs",
    "timings.json": "how long each stage took (changes on every rerun; not hashed)",
    "models/": "the fitted risk models (JSON)",
    "reports/": "the report site: index.html, one page per trust, QSG reports, funnels",
}
#: the quarterly run's (without ``reports/`` when reports are not rendered)
QUARTER_OTHERS = ("manifest.json", "timings.json", "models/", "reports/")


def _csv_columns(run_dir: Path) -> dict[str, list[str]]:
    out = {}
    for path in sorted(run_dir.glob("*.csv")):
        if path.name == DICTIONARY_FILE:
            continue
        out[path.name] = list(pd.read_csv(path, nrows=0).columns)
    out[DICTIONARY_FILE] = [d.column for d in PUBLISHED_COLUMNS[DICTIONARY_FILE]]
    return out


def write_data_dictionary(run_dir: Path | str) -> Path:
    """Write ``data_dictionary.csv`` for the CSVs in ``run_dir`` and return its path.

    Raises
    ------
    surveillance.output_contracts.OutputContractError
        When a published column is not documented (rule ``undocumented_column``).
    """
    run_dir = Path(run_dir)
    table = data_dictionary(_csv_columns(run_dir))
    return store.write_csv(table, run_dir / DICTIONARY_FILE, sort_by=None)


def readme_text(
    run_dir: Path | str,
    quarter: str,
    run_id: str,
    code: Mapping[str, Any] | None = None,
    others: Sequence[str] = QUARTER_OTHERS,
) -> str:
    """The README of a run folder (markdown), from the CSVs present in ``run_dir`` and the
    ``others`` (keys of :data:`OTHER_TEXT`) the run writes besides them, before or after."""
    run_dir = Path(run_dir)
    code = dict(code or {})
    version = code.get("package") or code.get("version") or ""
    commit = code.get("git_commit") or ""
    dictionary = pd.read_csv(run_dir / DICTIONARY_FILE, dtype=str, keep_default_na=False)
    small = dictionary[dictionary["may_hold_small_numbers"] == "True"]
    small_files = sorted(set(small["file"]))
    lines = [
        f"# Surveillance run {quarter}",
        "",
        f"Run id `{run_id}`; code version {version or 'unknown'}"
        + (f" (git commit `{commit}`)" if commit else "")
        + ". `manifest.json` records the inputs, configuration and code this run was made from "
        "and the sha256 of every file here.",
        "",
        "## Restricted: the analytic CSVs hold small numbers",
        "",
        "The CSVs in this folder keep every count exactly, including counts of 1 to 4 patients "
        "(deaths, cases, patients in a chart). They are **restricted analytic files**: not for "
        "publication or onward sharing outside the regulator's analysts. Published material must "
        "apply the small-number rule (counts of 1 to 4 patients shown as `<5`, and nothing from "
        "which such a count can be worked out); the report site in `reports/` already does.",
        "",
        "Files with columns that may hold (or reveal) a count of 1 to 4 patients: "
        + ", ".join(f"`{f}`" for f in small_files)
        + " (`may_hold_small_numbers` in `data_dictionary.csv` names the columns).",
        "",
        "## Files",
        "",
        "| file | rows | what it is |",
        "|---|---|---|",
    ]
    for path in sorted(run_dir.glob("*.csv")):
        rows = max(sum(1 for line in path.open("rb") if line.strip()) - 1, 0)
        what = FILE_TEXT.get(path.name, "")
        lines.append(f"| `{path.name}` | {rows} | {what} |")
    for name in others:
        lines.append(f"| `{name}` | | {OTHER_TEXT[name]} |")
    lines += [
        "",
        "## Reading the tables",
        "",
        "`data_dictionary.csv` describes every column of every CSV above: meaning, unit, type "
        "(`text`, `integer`, `number`, `boolean`, `month` = YYYY-MM, `date` = ISO 8601) and "
        "whether it may hold small numbers. The first columns of `flags.csv`, `alerts.csv`, "
        "`mortality.csv` and `bands.csv` are the output contract other tools read by name "
        "(DESIGN.md section 6); columns after them may be added, never renamed or removed.",
        "",
        "No CSV holds `inf`: an infinite number (a funnel limit of a cell expecting almost no "
        "deaths, the z of zero events on a log scale) is an empty cell, and the row's "
        "`infinite_note` says which and why. An empty cell elsewhere means not applicable or "
        "not available (see `reason` in `flags.csv`).",
        "",
        "An alert with a `caution` in `alerts.csv` came from a chart expecting fewer deaths than "
        "the minimum for an alert (`alert_min_expected` in `models/risk/monitoring.yaml`): a "
        "signal on very few patients, to be treated with care.",
        "",
    ]
    return "\n".join(lines)


def write_run_description(
    run_dir: Path | str,
    quarter: str,
    run_id: str,
    code: Mapping[str, Any] | None = None,
    others: Sequence[str] = QUARTER_OTHERS,
) -> list[Path]:
    """Write ``data_dictionary.csv`` then ``README.md`` into ``run_dir``; return their paths."""
    run_dir = Path(run_dir)
    dictionary = write_data_dictionary(run_dir)
    readme = run_dir / README_FILE
    readme.write_text(readme_text(run_dir, quarter, run_id, code, others), encoding="utf-8")
    return [dictionary, readme]


__all__ = [
    "DICTIONARY_FILE",
    "FILE_TEXT",
    "README_FILE",
    "readme_text",
    "write_data_dictionary",
    "write_run_description",
]
