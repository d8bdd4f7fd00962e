"""The quarterly run as plain functions (DESIGN.md section 2); ``flows/`` wires them into tasks.

Stages, each a function with explicit inputs and outputs (no Prefect here):

1. :func:`fingerprint` hashes every input file, the catalogue and the model configurations and
   derives the deterministic run id (also the cache key of every later stage).
2. :func:`load` reads the bundle (CSV or Parquet).
3. :func:`assemble_sources` builds the quarter's indicators from publishers' feeds
   (``<data>/feeds/``) and the bundle's ``indicators.csv``; missing or late sources are recorded.
4. :func:`validate` checks the input contracts (or, with ``quarantine``, sets bad rows aside).
5. :func:`derive` computes the staffing and intelligence indicators;
   :func:`mortality` fits the risk models and gives ``mortality.csv``, ``alerts.csv`` and the
   mortality indicators (these two are independent and may run in parallel).
6. :func:`assess_flags` turns all indicator rows into ``flags.csv``.
7. :func:`band` places every trust in a band (``bands.csv``) with movement since last quarter.
8. :func:`track` logs the run to MLflow (optional).
9. :func:`write_and_publish`: :func:`write_outputs` writes the tables into a staging directory,
   :func:`render_reports` the site, :func:`finish_manifest` the manifest, :func:`write_timings`
   the volatile ``timings.json``; the staging directory is then renamed into place
   (:func:`surveillance.store.staged_run`). Nothing is published if any stage fails.

The monthly mortality run (:func:`run_month`) reuses the quarter's saved risk models.

:func:`run_quarter` chains the stages without Prefect (used by tests and as the reference the
flow must reproduce byte for byte).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from surveillance import store
from surveillance.contracts import (
    ADDED_COLUMNS,
    ALERTS_COLUMNS,
    BANDS_COLUMNS,
    FLAGS_COLUMNS,
    MORTALITY_COLUMNS,
)
from surveillance.errors import ContractError, SurveillanceError
from surveillance.manifest import (
    TIMINGS_FILE,
    Manifest,
    code_version,
    count_rows,
    hash_outputs,
    run_id,
    sha256_file,
    write_manifest,
)
from surveillance.periods import Quarter
from surveillance.quarantine import QUARANTINE_COLUMNS
from surveillance.sources import Assembly, SourceStatus, assemble

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = PROJECT_ROOT / "models"
BUNDLE_TABLES = ("trusts", "indicators", "spells", "staffing", "intelligence", "inspections")
FEEDS_SUBDIR = "feeds"
MLFLOW_EXPERIMENT = "surveillance-quarterly"

#: output tables: file name -> key columns for a stable row order.
OUTPUT_KEYS: dict[str, list[str]] = {
    "flags.csv": ["trust_code", "indicator_id"],
    "alerts.csv": ["trust_code", "diagnosis_group", "signal_month"],
    "mortality.csv": ["trust_code", "diagnosis_group"],
    "bands.csv": ["trust_code"],
}


# ============================================================================================
# configuration and fingerprint


def default_model_configs() -> dict[str, Path]:
    """Model configuration files whose hashes go into the run id and the manifest."""
    paths = {}
    for sub in ("banding", "risk"):
        folder = MODELS_DIR / sub
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                paths[f"{sub}/{path.name}"] = path
    return paths


def banding_config_path(options: RunOptions) -> Path | None:
    """The banding selection the run's ``model_configs`` name (``banding/banding.yaml``): the
    file hashed into the run id is the file the banding stage reads."""
    path = (options.model_configs or {}).get("banding/banding.yaml")
    return Path(path) if path is not None else None


def default_catalogue_path() -> Path:
    from surveillance.catalogue import loader

    return Path(loader.DEFAULT_PATH)


def source_sha256() -> str:
    """sha256 over the package's own files (``*.py``, ``*.yaml``, ``*.csv``, templates).

    Pins the code beyond the git commit: uncommitted edits change it.
    """
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".yaml", ".csv", ".html", ".css", ".js"}:
            if "__pycache__" in path.parts:
                continue
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def current_code_version() -> dict[str, Any]:
    """:func:`surveillance.manifest.code_version` plus the package source hash."""
    return {**code_version(), "source_sha256": source_sha256()}


@dataclass(frozen=True)
class RunOptions:
    """Everything that decides a run's outputs (and the paths it reads and writes)."""

    data_dir: Path
    quarter: str
    out: Path
    force: bool = False
    quarantine: bool = False
    catalogue_path: Path | None = None
    model_configs: Mapping[str, Path] | None = None
    previous_run: Path | None = None
    code: Mapping[str, Any] | None = None
    render_reports: bool = True
    mlflow: bool = True
    #: where the spell-level steps run: ``memory`` (spells read whole), ``chunked`` (spells left
    #: on disk and read by row group: streamed here, or a Dask data frame under the Dask runner),
    #: or ``auto`` (chunked from :data:`AUTO_CHUNKED_SPELLS` rows of ``spells.parquet``, where it
    #: is both lighter and faster; memory below). The outputs are identical; not part of the run id.
    spells: str = "auto"

    def resolved(self) -> RunOptions:
        """Fill the defaults (catalogue, model configs, code version) once, up front."""
        q = Quarter.parse(self.quarter)
        return RunOptions(
            data_dir=Path(self.data_dir).resolve(),
            quarter=str(q),
            out=Path(self.out),
            force=self.force,
            quarantine=self.quarantine,
            catalogue_path=Path(self.catalogue_path or default_catalogue_path()),
            model_configs=dict(self.model_configs or default_model_configs()),
            previous_run=self.previous_run,
            code=dict(self.code or current_code_version()),
            render_reports=self.render_reports,
            mlflow=self.mlflow,
            spells=check_spells_mode(self.spells),
        )


SPELLS_MODES = ("auto", "memory", "chunked")
#: ``spells="auto"`` streams a ``spells.parquet`` of at least this many rows (docs/scaling.md:
#: at 1M spells memory is quicker, at 5M chunked is as quick and at 46.6M quicker, at a quarter
#: of the memory)
AUTO_CHUNKED_SPELLS = 5_000_000


def check_spells_mode(mode: str) -> str:
    if mode not in SPELLS_MODES:
        raise ValueError(f"spells must be one of {', '.join(SPELLS_MODES)}, got {mode!r}")
    return mode


@dataclass(frozen=True)
class Fingerprint:
    """Hashes of everything a run is made from; ``run_id`` is derived from them."""

    run_id: str
    quarter: str
    inputs: dict[str, dict[str, str]]
    catalogue_sha256: str
    model_configs: dict[str, str]
    code: dict[str, Any]
    options: dict[str, Any]
    #: the published quarters this run reads (:func:`previous_record`): last quarter's run id and
    #: the sha256 of its ``bands.csv`` / ``flags.csv`` (movement, persistence), and the sha256 of
    #: each earlier ``bands.csv`` read for the band history; empty when none is published
    previous: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Cache key of the run's stages (the run id's full hash, so it covers the inputs, the
        configuration, the code and the previous quarter's published outputs)."""
        return self.run_id


def input_files(data_dir: Path) -> dict[str, Path]:
    """The files a run reads from ``data_dir``: bundle tables and ``feeds/*``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise SurveillanceError(f"--data {data_dir}: no such directory")
    files: dict[str, Path] = {}
    for name in BUNDLE_TABLES:
        for suffix in (".csv", ".parquet"):
            path = data_dir / f"{name}{suffix}"
            if path.is_file():
                files[f"{name}{suffix}"] = path
    feeds = data_dir / FEEDS_SUBDIR
    if feeds.is_dir():
        for path in sorted(feeds.iterdir()):
            if path.is_file() and path.suffix in (".csv", ".parquet"):
                files[f"{FEEDS_SUBDIR}/{path.name}"] = path
            elif path.is_dir():  # a feed of several publisher files (the CWT xlsx extracts)
                for member in sorted(path.iterdir()):
                    if member.is_file() and member.suffix in (".csv", ".parquet", ".xlsx"):
                        files[f"{FEEDS_SUBDIR}/{path.name}/{member.name}"] = member
    return files


def fingerprint(options: RunOptions) -> Fingerprint:
    """Hash the inputs, catalogue, model configs and code; derive the run id."""
    opts = options.resolved()
    files = input_files(opts.data_dir)
    inputs = {
        name: {"path": name, "sha256": sha256_file(path)} for name, path in sorted(files.items())
    }
    catalogue_sha = sha256_file(opts.catalogue_path)
    configs = {name: sha256_file(path) for name, path in sorted(opts.model_configs.items())}
    decided = {"quarantine": opts.quarantine}
    previous = previous_record(opts)
    rid = run_id(opts.quarter, inputs, catalogue_sha, configs, opts.code, decided, previous)
    return Fingerprint(
        rid, opts.quarter, inputs, catalogue_sha, configs, dict(opts.code), decided, previous
    )


# ============================================================================================
# stages


def import_stages() -> None:
    """Import every stage's module up front (in one thread).

    The stages import their modules lazily; when two stages first run at the same time in a
    thread pool, two threads importing one package can see it half-initialised.
    """
    import importlib

    for name in (
        "surveillance.contracts",
        "surveillance.assess",
        "surveillance.stats",
        "surveillance.mortality.indicators",
        "surveillance.mortality.monitor",
        "surveillance.mortality.quality",
        "surveillance.mortality.ratios",
        "surveillance.mortality.risk_model",
        "surveillance.banding.config",
        "surveillance.banding.cqc2013",
        "surveillance.banding.explain",
    ):
        importlib.import_module(name)


def load(data_dir: Path, spells: str = "auto") -> Any:
    """Read the bundle (:func:`surveillance.store.read_bundle`); with ``spells="chunked"`` (or
    ``"auto"`` and a large file) a ``spells.parquet`` stays on disk for the chunked steps."""
    mode = check_spells_mode(spells)
    if mode == "auto":
        mode = (
            "chunked"
            if parquet_rows(Path(data_dir) / "spells.parquet") >= AUTO_CHUNKED_SPELLS
            else "memory"
        )
    return store.read_bundle(data_dir, lazy_spells=mode == "chunked")


def parquet_rows(path: Path) -> int:
    """Rows of a Parquet file from its footer (0 when absent or unreadable: reading it whole
    then reports the problem with the file's name)."""
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows) if path.is_file() else 0
    except Exception:  # noqa: BLE001 - any unreadable footer: the normal read names the file
        return 0


def load_catalogue(path: Path | None = None) -> pd.DataFrame:
    from surveillance.catalogue import load_catalogue as _load

    return _load(path)


def assemble_sources(bundle: Any, catalogue: pd.DataFrame, quarter: str) -> Assembly:
    """Indicators for the quarter from ``<data>/feeds/`` and ``indicators.csv`` (with status).

    First the columns the assembly keys on (:func:`check_key_columns`) and the feed files
    (:func:`check_feed_files`): either stops the run with contract violations naming the file.
    """
    feeds = Path(bundle.directory) / FEEDS_SUBDIR
    check_key_columns(bundle, catalogue, quarter)
    check_feed_files(feeds)
    derived = {
        "spells": bundle.has_spells,
        "staffing": bundle.staffing is not None,
        "intelligence": bundle.intelligence is not None,
    }
    return assemble(
        feeds if feeds.is_dir() else None,
        catalogue,
        quarter,
        bundle_indicators=bundle.indicators,
        trust_codes=bundle.trusts["trust_code"].astype(str),
        derived_available=derived,
    )


@dataclass
class Validated:
    """The bundle after the contract check, with the assembled indicators in place."""

    bundle: Any
    quarantine: pd.DataFrame
    violations: list[Any] = field(default_factory=list)


def validate(
    bundle: Any,
    assembly: Assembly,
    catalogue: pd.DataFrame,
    quarter: str,
    quarantine: bool,
    checked: bool = False,
) -> Validated:
    """Check the input contracts on the bundle with the assembled indicators.

    Without ``quarantine`` any violation stops the run (:class:`ContractError` naming file, rows,
    column and rule). With ``quarantine`` the rows named by violations are removed from their
    tables and listed in ``quarantine.csv`` by :func:`surveillance.quarantine.quarantine_bundle`
    (one line per row: file, row, column, rule, message and the row's key columns); violations
    that name no rows (a missing column, a missing file) still stop the run. ``checked`` (no
    quarantine) skips the contract check that :func:`preflight` already passed for the same run id.
    """
    from dataclasses import replace

    from surveillance import quarantine as quarantine_module

    prechecked = checked
    checked = with_assembled_indicators(bundle, assembly)
    if not quarantine:
        # ``checked``: :func:`preflight` already found no violation in these very bytes
        violations = [] if prechecked else contract_violations(checked, quarter, catalogue)
        if violations:
            raise ContractError(violations)
        return Validated(checked, pd.DataFrame(columns=QUARANTINE_COLUMNS))
    if checked.spells is None and checked.spells_source is not None:
        # quarantine rewrites the tables row by row: it needs the spells in memory
        from surveillance.bundle import read_table

        spells = read_table(checked.spells_source.path, "spells")
        checked = replace(checked, spells=spells, spells_source=None)
    kept = quarantine_module.quarantine_bundle(checked, quarter, catalogue)
    return Validated(kept.bundle, kept.rows, list(kept.violations))


def contract_violations(bundle: Any, quarter: str, catalogue: pd.DataFrame) -> list:
    """:func:`surveillance.contracts.validate_bundle`, with spells left on disk checked chunk by
    chunk (:func:`surveillance.spell_engine.validate_spells`)."""
    from surveillance import contracts, spell_engine

    with spell_engine.chunks_for(bundle) as chunks:

        def chunked(known: pd.Index | None) -> list:
            return spell_engine.validate_spells(chunks, quarter, catalogue, known)

        return contracts.validate_bundle(bundle, quarter, catalogue, chunked_spells=chunked)


@dataclass
class Derived:
    """Staffing and intelligence indicator rows, and the ward table behind the fill rates."""

    indicators: pd.DataFrame
    wards: pd.DataFrame | None = None


def derive(bundle: Any, catalogue: pd.DataFrame, quarter: str) -> Derived:
    """Staffing and intelligence indicators in the ``indicators.csv`` shape (+ ward table)."""
    from surveillance import assess as assess_module

    frames = []
    wards = None
    codes = bundle.trusts["trust_code"].astype(str).tolist()
    if bundle.staffing is not None:
        rows, wards = assess_module.derive_staffing(bundle.staffing, quarter)
        frames.append(rows)
    if bundle.intelligence is not None:
        from surveillance import spell_engine

        with spell_engine.chunks_for(bundle) as chunks:
            activity = spell_engine.spells_activity(chunks, quarter) if chunks else None
        frames.append(
            assess_module.derive_intelligence(
                bundle.intelligence, quarter, codes, activity=activity, catalogue=catalogue
            )
        )
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return Derived(pd.DataFrame(columns=assess_module.INDICATOR_COLUMNS), wards)
    return Derived(pd.concat(frames, ignore_index=True), wards)


@dataclass
class MortalityResult:
    """Everything the mortality stage gives the run."""

    table: pd.DataFrame  # mortality.csv
    alerts: pd.DataFrame  # alerts.csv
    indicators: pd.DataFrame  # mortality indicator rows (indicators.csv shape)
    precomputed: pd.DataFrame | None  # flags computed by the monitor (e.g. mort_alert)
    model_summary: pd.DataFrame | None = None
    model: Any = None
    paths: pd.DataFrame | None = None  # monthly course of each alerted chart (cusum_paths.csv)
    alert_model: Any = None  # the charts' model with its baseline (None: ``model``)


def mortality(bundle: Any, catalogue: pd.DataFrame, quarter: str) -> MortalityResult:
    """Risk models, ``mortality.csv``, RA-CUSUM ``alerts.csv`` and the mortality indicators.

    One logistic model per diagnosis group is fitted on the three years to the quarter end
    (``models/risk/default.yaml``); expected deaths give the trust and trust x group ratios and
    the monthly RA-CUSUM charts; :func:`surveillance.mortality.indicators.mortality_indicators`
    turns them into the catalogue's ``mort_*`` indicator rows (``mort_alert`` counts the quarter's
    alerts). Without ``spells`` the three tables are empty and the indicators are reported missing.
    """
    if not bundle.has_spells:
        return MortalityResult(
            pd.DataFrame(columns=MORTALITY_COLUMNS),
            pd.DataFrame(columns=ALERTS_COLUMNS),
            pd.DataFrame(columns=["trust_code", "indicator_id"]),
            None,
        )
    from surveillance import spell_engine
    from surveillance.mortality.partials import run_chunked, run_in_memory
    from surveillance.reports.paths import paths_from_run

    with spell_engine.chunks_for(bundle) as chunks:
        if isinstance(chunks, spell_engine.FrameChunks):
            run = run_in_memory(bundle.spells, quarter)
        else:
            run = run_chunked(chunks.apply, chunks.apply_reduce, quarter)
    return MortalityResult(
        table=run.mortality,
        alerts=run.alerts,
        indicators=run.indicators,
        precomputed=None,  # mort_alert comes as a rule indicator row (count of alerts)
        model_summary=getattr(run.model, "groups_", None),
        model=run.model,
        alert_model=run.alert_model,
        # the alerted charts' monthly course, for the CUSUM and VLAD figures (aggregated by
        # month: no spell-level rows leave the stage)
        paths=paths_from_run(run.chart_run, run.alerts),
    )


def assess_flags(
    validated: Validated,
    derived: Derived,
    mortality_result: MortalityResult,
    assembly: Assembly,
    catalogue: pd.DataFrame,
    quarter: str,
    previous_flags: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``flags.csv``: every catalogue indicator x trust, with missing/late sources explained."""
    from surveillance import assess as assess_module

    bundle = validated.bundle
    extra = [
        f for f in (derived.indicators, mortality_result.indicators) if f is not None and len(f)
    ]
    flags = assess_module.assess(
        bundle.indicators,
        catalogue,
        quarter,
        derived=pd.concat(extra, ignore_index=True) if extra else None,
        trusts=bundle.trusts,
        precomputed=mortality_result.precomputed,
    )
    excluded = list(flags.attrs.get("excluded_from_banding", []))
    flags = explain_unavailable(flags, assembly.unavailable())
    try:
        from surveillance.banding.explain import mark_persistence

        flags = mark_persistence(flags, previous_flags)
    except ImportError:  # pragma: no cover - banding always present
        pass
    flags.attrs["excluded_from_banding"] = excluded
    return flags


def excluded_indicators(flags: pd.DataFrame) -> list[str]:
    """Indicators left out of banding this quarter (``in_banding`` false: coverage too low)."""
    if "in_banding" in flags.columns:
        keep = flags["in_banding"].astype(str).str.lower().isin(["true", "1"])
        return sorted(flags.loc[~keep, "indicator_id"].astype(str).unique())
    return sorted(flags.attrs.get("excluded_from_banding", []))


def explain_unavailable(flags: pd.DataFrame, unavailable: Mapping[str, str]) -> pd.DataFrame:
    """Indicators of missing or late sources: ``not_applicable`` with the source's reason."""
    if not unavailable:
        return flags
    out = flags.copy()
    hit = out["indicator_id"].isin(list(unavailable))
    applicable_before = hit & (out["flag"] != "not_applicable")
    if applicable_before.any():
        # only possible if another path gave rows for them: never report stale data as current
        for column in ("observed", "expected", "z", "z_adjusted", "p_value"):
            if column in out.columns:
                out.loc[applicable_before, column] = np.nan
        out.loc[applicable_before, "flag"] = "not_applicable"
    if "reason" not in out.columns:
        out["reason"] = ""
    specialist = out["reason"].astype(str) == "does not apply to specialist trusts"
    fill = hit & ~specialist
    out.loc[fill, "reason"] = out.loc[fill, "indicator_id"].map(
        lambda i: f"source unavailable: {unavailable[i]}"
    )
    return out


#: how many published quarters before the run's the band history reads
HISTORY_QUARTERS = 8
#: columns a previous quarter's tables must have to be used (movement, persistence, history)
PREVIOUS_COLUMNS: dict[str, tuple[str, ...]] = {
    "bands.csv": ("trust_code", "band"),
    "flags.csv": ("trust_code", "indicator_id", "flag"),
}


class PreviousQuarterError(SurveillanceError):
    """A published quarter the run reads (last quarter, or one of the band history) is unusable.

    The run stops: movement, persistence and the band history would silently be wrong without it.
    """


def _previous_root(options: RunOptions) -> Path:
    return Path(options.previous_run).parent if options.previous_run else Path(options.out)


def previous_run_directory(options: RunOptions) -> Path | None:
    """Last quarter's published directory (``previous_run``, else ``<out>/<previous quarter>``)."""
    if options.previous_run is not None:
        return Path(options.previous_run)
    candidate = Path(options.out) / str(Quarter.parse(options.quarter).previous())
    return candidate if candidate.is_dir() else None


def _unusable(run_dir: Path, problem: str) -> PreviousQuarterError:
    return PreviousQuarterError(
        f"published quarter {run_dir} cannot be read: {problem}. The run does not continue "
        "without it (movement, persistence and the band history depend on it): restore it "
        f"(`surveillance verify {run_dir}` lists what changed) or move it out of the output "
        "directory, then run again"
    )


def read_published_table(run_dir: Path, name: str) -> tuple[pd.DataFrame, str]:
    """One table of a published quarter, checked: ``(frame, sha256 of its bytes)``.

    The bytes are read once, so the hash recorded is that of the table used. Raises
    :class:`PreviousQuarterError` naming the file and the problem (not UTF-8, not CSV, a
    required column missing, or different from the sha256 its run's manifest recorded).
    """
    import io

    path = Path(run_dir) / name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _unusable(run_dir, f"{name}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    recorded = _manifest(run_dir).get("outputs", {}).get(name)
    if recorded and recorded != digest:
        raise _unusable(
            run_dir,
            f"{name} differs from the sha256 its manifest.json recorded (changed since it "
            "was published)",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _unusable(
            run_dir, f"{name} is not UTF-8 text (byte {exc.start}, line {line})"
        ) from None
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as exc:
        raise _unusable(run_dir, f"{name} is not a readable CSV ({exc})") from None
    missing = [c for c in PREVIOUS_COLUMNS.get(name, ()) if c not in frame.columns]
    if missing:
        raise _unusable(run_dir, f"{name} has no column {', '.join(missing)}")
    return frame, digest


def _manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _unusable(run_dir, f"manifest.json is not readable JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise _unusable(run_dir, "manifest.json is not a JSON object")
    return payload


def _history_directories(options: RunOptions, quarters: int) -> list[tuple[str, Path]]:
    q = Quarter.parse(options.quarter)
    root = _previous_root(options)
    found = []
    for _ in range(quarters):
        q = q.previous()
        path = root / str(q) / "bands.csv"
        if path.is_file() or (root / str(q)).is_dir():
            found.append((str(q), root / str(q)))
    return found


def band_history(options: RunOptions, quarters: int = HISTORY_QUARTERS) -> pd.DataFrame:
    """Bands of the published quarters before this one (``trust_code, quarter, band``).

    Read from ``<out>/<quarter>/bands.csv`` for up to ``quarters`` earlier quarters, so trust
    pages can show the band history. Like movement, it depends on what is already published, so
    the hashes of the files read are part of the run id (:func:`previous_record`).
    """
    frames = []
    for quarter, run_dir in _history_directories(options, quarters):
        bands, _ = read_published_table(run_dir, "bands.csv")
        frames.append(bands[["trust_code", "band"]].assign(quarter=quarter))
    if not frames:
        return pd.DataFrame(columns=["trust_code", "quarter", "band"])
    return pd.concat(frames, ignore_index=True)[["trust_code", "quarter", "band"]]


def previous_outputs(
    options: RunOptions, expected: Mapping[str, Any] | None = None
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Last quarter's published ``bands.csv`` and ``flags.csv`` (for movement and persistence).

    ``bands.csv`` is required of a published quarter, ``flags.csv`` optional (no persistence
    without it). With ``expected`` (:attr:`Fingerprint.previous`) the files read must be the ones
    the run id was made from, or the run stops (the quarter was republished meanwhile).
    """
    previous = previous_run_directory(options)
    if previous is None:
        if expected and expected.get("previous_quarter"):
            raise PreviousQuarterError(
                f"the previous quarter {expected['previous_quarter']['quarter']} was removed "
                "while the run was in progress: run again"
            )
        return None, None
    frames: list[pd.DataFrame | None] = []
    hashes = {}
    for name in ("bands.csv", "flags.csv"):
        if name == "flags.csv" and not (Path(previous) / name).is_file():
            frames.append(None)
            continue
        frame, hashes[name] = read_published_table(previous, name)
        frames.append(frame)
    if expected is not None:
        recorded = (expected.get("previous_quarter") or {}).get("sha256")
        if recorded != hashes:
            raise PreviousQuarterError(
                f"published quarter {previous} changed while the run was in progress: run again"
            )
    return frames[0], frames[1]


def previous_record(options: RunOptions) -> dict[str, Any]:
    """What the run reads of already published quarters, for the run id and the manifest.

    ``previous_quarter``: last quarter's ``quarter``, ``run_id`` (from its manifest, empty when
    it has none) and the sha256 of its ``bands.csv`` and ``flags.csv``; ``band_history``: quarter
    -> sha256 of each earlier ``bands.csv`` read for the band history. Empty when nothing is
    published before the run's quarter. Raises :class:`PreviousQuarterError` for an unusable one.
    """
    record: dict[str, Any] = {}
    previous = previous_run_directory(options)
    if previous is not None:
        hashes = {}
        for name in ("bands.csv", "flags.csv"):
            if name == "flags.csv" and not (Path(previous) / name).is_file():
                continue
            hashes[name] = read_published_table(previous, name)[1]
        record["previous_quarter"] = {
            "quarter": str(Quarter.parse(options.quarter).previous()),
            "run_id": str(_manifest(previous).get("run_id", "")),
            "sha256": hashes,
        }
    history = {
        quarter: read_published_table(run_dir, "bands.csv")[1]
        for quarter, run_dir in _history_directories(options, HISTORY_QUARTERS)
    }
    if history:
        record["band_history"] = history
    return record


def band(
    flags: pd.DataFrame,
    trusts: pd.DataFrame,
    quarter: str,
    previous_bands: pd.DataFrame | None = None,
    config_path: Path | None = None,
) -> pd.DataFrame:
    """``bands.csv`` from the champion banding model of the selection ``config_path`` (default
    ``models/banding/banding.yaml``; a run passes :func:`banding_config_path` of its options)."""
    from surveillance.banding.config import load_banding_config
    from surveillance.banding.cqc2013 import CQC2013Model
    from surveillance.banding.explain import add_movement

    selection = load_banding_config(config_path)
    if selection.champion != "cqc2013":
        raise SurveillanceError(
            f"banding champion {selection.champion!r}: only cqc2013 publishes bands.csv so far"
        )
    model = CQC2013Model(selection.cqc2013)  # the selection's own config (was the default's)
    bands = model.predict_bands(flags, trusts, quarter, excluded=excluded_indicators(flags))
    return add_movement(bands, previous_bands)


# ============================================================================================
# MLflow


def track(
    out: Path, fp: Fingerprint, flags: pd.DataFrame, bands: pd.DataFrame, mort: MortalityResult
) -> dict[str, str]:
    """Log the run to MLflow (``<out>/mlflow.db``, artifacts in ``<out>/mlartifacts``).

    One run in the ``surveillance-quarterly`` experiment (banding params, band and flag counts,
    flags/bands artifacts; :func:`surveillance.tracking.log_banding_run`) tagged with the
    deterministic ``surveillance.run_id``, and the fitted risk models in ``risk-models``
    (:func:`surveillance.mortality.tracking.log_risk_model`). Returns the MLflow run ids; they go
    to ``timings.json`` (MLflow draws them at random, so they cannot be in the byte-stable
    manifest, which records the tag to search by instead).
    """
    import mlflow

    from surveillance import tracking
    from surveillance.banding.config import load_banding_config
    from surveillance.output_contracts import check_output

    # nothing malformed is logged either (all four tables are checked again before publishing)
    check_output("flags.csv", ordered(flags, FLAGS_COLUMNS))
    check_output("bands.csv", ordered(bands, BANDS_COLUMNS))
    root = Path(out).resolve()
    tracking.configure(root, experiment=MLFLOW_EXPERIMENT)
    ids = {}
    run_id_ = tracking.log_banding_run(
        flags,
        bands,
        fp.quarter,
        config=load_banding_config(),
        extra_params={"surveillance_run_id": fp.run_id},
        run_name=f"quarterly-{fp.quarter}",
    )
    with tracking.quiet():
        mlflow.MlflowClient().set_tag(run_id_, "surveillance.run_id", fp.run_id)
    ids["mlflow_run_id"] = run_id_
    if mort.model is not None:
        from surveillance.mortality.tracking import log_risk_model

        ids["mlflow_risk_model_run_id"] = log_risk_model(
            mort.model,
            tracking.tracking_uri(root),
            artifact_location=root / "mlartifacts",
            run_name=f"risk-models-{fp.quarter}",
        )
    return ids


# ============================================================================================
# writing and publishing


def ordered(
    frame: pd.DataFrame, contract: list[str], added: list[str] | None = None
) -> pd.DataFrame:
    """Contract columns in order, then the columns ``added`` to the contract
    (:data:`surveillance.contracts.ADDED_COLUMNS`; a missing one is written empty), then any
    extra columns (DESIGN.md section 6)."""
    missing = [c for c in contract if c not in frame.columns]
    if missing:
        raise SurveillanceError(f"output is missing contract column(s) {missing}")
    added = [c for c in (added or []) if c not in contract]
    frame = frame.assign(**{c: "" for c in added if c not in frame.columns})
    extras = [c for c in frame.columns if c not in contract and c not in added]
    return frame[contract + added + extras]


def with_names(flags: pd.DataFrame, trusts: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """``flags`` with ``trust_name`` (trusts.csv) and ``indicator_name`` (the catalogue)."""
    trust_names = dict(
        zip(trusts["trust_code"].astype(str), trusts["trust_name"].astype(str), strict=True)
    )
    names = catalogue["name"] if "name" in catalogue.columns else pd.Series(dtype=str)
    indicator_names = {str(k): str(v) for k, v in names.items()}
    codes = flags["trust_code"].astype(str)
    ids = flags["indicator_id"].astype(str)
    return flags.assign(
        trust_name=codes.map(trust_names).fillna(codes).to_numpy(dtype=object),
        indicator_name=ids.map(indicator_names).fillna(ids).to_numpy(dtype=object),
    )


@dataclass
class QuarterResults:
    """The in-memory results of a quarter, ready to write."""

    flags: pd.DataFrame
    bands: pd.DataFrame
    mortality: MortalityResult
    assembly: Assembly
    validated: Validated
    excluded: list[str]
    wards: pd.DataFrame | None = None
    band_history: pd.DataFrame | None = None


def write_outputs(
    staging: Path, results: QuarterResults, catalogue: pd.DataFrame, quarter: str | None = None
) -> dict[str, int]:
    """Write the contract tables, ``sources.csv`` and ``quarantine.csv``; return row counts
    (``quarter``: also check the alerts against the run's 12-month window and quarter)."""
    staging = Path(staging)
    trusts = results.validated.bundle.trusts
    tables = {
        "flags.csv": ordered(
            with_names(results.flags, trusts, catalogue), FLAGS_COLUMNS, ADDED_COLUMNS["flags.csv"]
        ),
        "alerts.csv": ordered(
            results.mortality.alerts, ALERTS_COLUMNS, ADDED_COLUMNS["alerts.csv"]
        ),
        "mortality.csv": ordered(
            results.mortality.table, MORTALITY_COLUMNS, ADDED_COLUMNS["mortality.csv"]
        ),
        "bands.csv": ordered(results.bands, BANDS_COLUMNS, ADDED_COLUMNS["bands.csv"]),
    }
    from surveillance.output_contracts import blank_infinities, check_outputs

    # the output contracts (DESIGN.md section 6): a malformed table stops the run unpublished
    check_outputs(tables, trusts["trust_code"].astype(str), quarter)
    for name, frame in tables.items():
        # infinite numbers (allowed in memory) are written as empty cells with a reason
        if "infinite_note" in frame.columns:
            frame = blank_infinities(frame)
        store.write_csv(frame, staging / name, sort_by=OUTPUT_KEYS[name])
    store.write_csv(sources_frame(results.assembly.sources), staging / "sources.csv", sort_by=None)
    store.write_csv(
        excluded_frame(results.excluded, results.flags, catalogue),
        staging / "excluded_indicators.csv",
        sort_by=["indicator_id"],
    )
    from surveillance.banding.explain import contributions

    explanations = contributions(results.flags, top_n=None, excluded=results.excluded)
    explanations = explanations.assign(
        z_adjusted=pd.to_numeric(explanations["z_adjusted"], errors="coerce").replace(
            [np.inf, -np.inf], np.nan
        )
    )  # the flag's infinite_note (flags.csv) says why; no CSV holds inf
    store.write_csv(explanations, staging / "explanations.csv", sort_by=["trust_code", "rank"])
    if results.wards is not None and len(results.wards):
        keys = [c for c in ("trust_code", "ward_code") if c in results.wards.columns]
        store.write_csv(results.wards, staging / "staffing_wards.csv", sort_by=keys)
    if results.band_history is not None and len(results.band_history):
        store.write_csv(
            results.band_history, staging / "band_history.csv", sort_by=["trust_code", "quarter"]
        )
    if results.mortality.paths is not None and len(results.mortality.paths):
        store.write_csv(
            results.mortality.paths,
            staging / "cusum_paths.csv",
            sort_by=["trust_code", "diagnosis_group", "month"],
        )
    if results.mortality.model is not None:
        (staging / "models").mkdir(exist_ok=True)
        results.mortality.model.save(staging / "models" / "risk_model.json")
    if results.mortality.alert_model is not None:
        results.mortality.alert_model.save(staging / "models" / "alert_model.json")
    if len(results.validated.quarantine):
        store.write_csv(
            results.validated.quarantine, staging / "quarantine.csv", sort_by=["file", "row"]
        )
    return {
        name: count_rows(staging / name) for name in sorted(p.name for p in staging.glob("*.csv"))
    }


def sources_frame(sources: list[SourceStatus]) -> pd.DataFrame:
    """One row per source x indicator: status, reason, file and hash (``sources.csv``)."""
    rows = [
        {
            "source": s.source,
            "indicator_id": i,
            "status": s.status,
            "reason": s.reason,
            "file": s.file or "",
            "sha256": s.sha256 or "",
            "latest_period": s.latest_period or "",
            "provisional": s.provisional,
        }
        for s in sources
        for i in s.indicator_ids
    ]
    columns = ["source", "indicator_id", "status", "reason", "file", "sha256", "latest_period"]
    columns.append("provisional")  # months used that the publisher marks provisional
    frame = pd.DataFrame.from_records(rows, columns=columns)
    return frame.sort_values(["source", "indicator_id"], kind="mergesort")


def excluded_frame(
    excluded: list[str], flags: pd.DataFrame, catalogue: pd.DataFrame
) -> pd.DataFrame:
    """Indicators left out of banding this quarter and why (coverage below the minimum)."""
    rows = []
    for indicator_id in sorted(excluded):
        sub = flags[flags["indicator_id"] == indicator_id]
        reasons = sub.get("reason", pd.Series(dtype=object))
        in_scope = reasons.astype(str) != "does not apply to specialist trusts"
        applicable = int(((sub["flag"] != "not_applicable") & in_scope).sum())
        scope = int(in_scope.sum())
        need = float(catalogue.loc[indicator_id, "min_coverage"])
        common = reasons[sub["flag"] == "not_applicable"].astype(str)
        top = common.value_counts().index[0] if len(common) else ""
        rows.append(
            {
                "indicator_id": indicator_id,
                "applicable": applicable,
                "in_scope": scope,
                "coverage": applicable / scope if scope else 0.0,
                "min_coverage": need,
                "reason": (
                    f"national coverage {applicable}/{scope} trusts is below the minimum "
                    f"{need:.0%}" + (f"; most common: {top}" if top else "")
                ),
            }
        )
    columns = ["indicator_id", "applicable", "in_scope", "coverage", "min_coverage", "reason"]
    return pd.DataFrame.from_records(rows, columns=columns)


def render_reports(
    staging: Path,
    catalogue: pd.DataFrame,
    fp: Fingerprint | None = None,
    notes: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Render the static site into ``<staging>/reports``. The manifest is written after the
    site, so the footers take the run id and code version from ``fp`` and the index the input
    notes ``notes`` (what :func:`finish_manifest` records)."""
    from surveillance.reports.site import build_site

    provenance = None
    if fp is not None:
        provenance = {"run_id": fp.run_id, "code_version": fp.code, "input_notes": list(notes)}
    return build_site(staging, catalogue=catalogue, provenance=provenance)


def finish_manifest(
    staging: Path,
    fp: Fingerprint,
    results: QuarterResults,
    catalogue: pd.DataFrame,
    row_counts: Mapping[str, int],
    notes: Sequence[Mapping[str, Any]] = (),
) -> Manifest:
    """Write ``manifest.json`` (deterministic) after every other output is in place; ``notes``
    are the bundle's input notes as dicts (:func:`input_notes`)."""
    sources = [s.to_dict() for s in results.assembly.sources]
    missing = [
        {
            "source": s.source,
            "status": s.status,
            "indicators": ", ".join(s.indicator_ids),
            "reason": s.reason,
        }
        for s in results.assembly.sources
        if not s.available
    ]
    excluded = excluded_frame(results.excluded, results.flags, catalogue)
    left_out = [{"indicator_id": r.indicator_id, "reason": r.reason} for r in excluded.itertuples()]
    manifest = Manifest(
        run_id=fp.run_id,
        quarter=fp.quarter,
        inputs=fp.inputs,
        catalogue_sha256=fp.catalogue_sha256,
        model_configs=fp.model_configs,
        code_version=fp.code,
        options=fp.options,
        row_counts=dict(row_counts),
        outputs=hash_outputs(staging),
        sources=sources,
        left_out_of_banding=left_out,
        missing_sources=missing,
        quarantined_rows=len(results.validated.quarantine),
        source_notes=list(results.assembly.notes),
        previous=dict(fp.previous),
        mlflow={
            "experiment": "surveillance-quarterly",
            "tag": {"surveillance.run_id": fp.run_id},
            "run_id_in": TIMINGS_FILE,
        },
    )
    manifest.input_notes = list(notes)
    write_manifest(manifest, staging)
    return manifest


# ============================================================================================
# input notes: what the run accepted but changed or does not know (nothing silent)

#: the reference list of diagnosis groups: the SHMI-style (CCS) groups the risk models, the
#: mortality indicators (models/risk/indicator_groups.yaml) and the synthetic nation are built on
DIAGNOSIS_GROUPS_FILE = Path(__file__).resolve().parent / "synth" / "diagnosis_groups.csv"
#: how many unknown groups a note names
NAMED_GROUPS = 10


def reference_diagnosis_groups(path: Path = DIAGNOSIS_GROUPS_FILE) -> frozenset[str]:
    """The diagnosis groups of the reference list (:data:`DIAGNOSIS_GROUPS_FILE`)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=["diagnosis_group"])
    return frozenset(frame["diagnosis_group"])


def diagnosis_group_counts(bundle: Any) -> pd.Series:
    """Spells per diagnosis group (in memory, or the column of a spells file left on disk)."""
    if bundle.spells is not None and "diagnosis_group" in bundle.spells.columns:
        groups = bundle.spells["diagnosis_group"]
    elif bundle.spells_source is not None:
        import pyarrow.parquet as pq

        path = bundle.spells_source.path
        if "diagnosis_group" not in pq.read_schema(path).names:
            return pd.Series(dtype="int64")
        table = pq.read_table(path, columns=["diagnosis_group"])
        groups = table.column(0).to_pandas()
    else:
        return pd.Series(dtype="int64")
    counts = groups.astype("string").value_counts(dropna=True)
    return counts[counts > 0]


def diagnosis_notes(bundle: Any, reference: frozenset[str] | None = None) -> list[Any]:
    """One ``unknown_value`` note naming the diagnosis groups of the spells that are not in the
    reference list, with their spell counts (most spells first), and the reference name a
    group differs from only in case or spacing; empty when every group is known.

    The run goes on: the risk model fits such a group as a group of its own (it never pools it
    with the group it may have been meant to be), which is why it must be said.
    """
    from surveillance.bundle import InputNote

    if not bundle.has_spells:
        return []
    reference = reference_diagnosis_groups() if reference is None else reference
    counts = diagnosis_group_counts(bundle)
    unknown = counts[~counts.index.isin(list(reference))]
    if unknown.empty:
        return []
    unknown = unknown.sort_index(kind="mergesort").sort_values(ascending=False, kind="mergesort")
    folded = {" ".join(r.split()).casefold(): r for r in reference}
    named = []
    for group, n in unknown.head(NAMED_GROUPS).items():
        near = folded.get(" ".join(str(group).split()).casefold())
        hint = f", differs only in case or spacing from {near!r}" if near else ""
        named.append(f"{str(group)[:80]!r} {int(n):,} spell(s){hint}")
    more = len(unknown) - len(named)
    listing = "; ".join(named) + (f"; and {more} more group(s)" if more > 0 else "")
    file = bundle.file_name("spells")
    message = (
        f"{len(unknown)} diagnosis group(s) not in the reference list ({DIAGNOSIS_GROUPS_FILE.name}"
        f"): {listing}; each is fitted by the risk models as a group of its own"
    )
    return [InputNote(file, "diagnosis_group", "unknown_value", message, int(unknown.sum()))]


def input_notes(bundle: Any) -> list[Any]:
    """Every :class:`surveillance.bundle.InputNote` of a bundle: what the reader converted or
    normalised, and the diagnosis groups the risk models do not know."""
    return [*getattr(bundle, "notes", ()), *diagnosis_notes(bundle)]


def write_timings(
    staging_or_run: Path, timings: Mapping[str, float], extra: Mapping[str, Any]
) -> Path:
    """``timings.json``: what legitimately changes between reruns (excluded from hashes)."""
    payload = {
        "stage_seconds": {k: round(float(v), 3) for k, v in timings.items()},
        "total_seconds": round(float(sum(timings.values())), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "host": platform.node(),
        "pid": os.getpid(),
        "finished_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),  # UTC
        **extra,
    }
    return store.write_json(payload, Path(staging_or_run) / TIMINGS_FILE)


# ============================================================================================
# check first, orchestrate second (DESIGN.md section 7)

#: contract rules whose verdict depends on the run's quarter (a wrong --quarter breaks them)
QUARTER_RULES = frozenset(
    {"period_window", "spell_window", "month_window", "date_after_quarter", "monthly_row"}
)


class QuarterContractError(ContractError):
    """:class:`ContractError` with a hint: the quarter the data cover, when it is another one."""

    def __init__(self, violations: list, hint: str = ""):
        super().__init__(violations)
        self.hint = hint


def data_quarter(bundle: Any) -> tuple[str, str] | None:
    """The quarter a bundle's data cover and why: the quarter of the latest indicator period end
    (else of the latest spell discharge), or ``None`` when neither has a parseable date."""
    candidates = [(bundle.indicators, "period_end", "indicators.csv period_end")]
    if bundle.spells is not None:
        candidates.append((bundle.spells, "discharge_date", "spells discharge_date"))
    for frame, column, label in candidates:
        if frame is None or column not in frame.columns or not len(frame):
            continue
        dates = pd.to_datetime(frame[column].astype(str), errors="coerce", format="ISO8601")
        latest = dates.max()
        if pd.notna(latest):
            quarter = f"{latest.year}Q{(latest.month - 1) // 3 + 1}"
            return quarter, f"the latest {label} is {latest.date()}"
    return None


def quarter_hint(bundle: Any, quarter: str, violations: list) -> str:
    """``"the data cover 2013Q3 (...): did you mean --quarter 2013Q3?"`` when the violations
    depend on the quarter and the data cover another one; empty otherwise."""
    if not any(v.rule in QUARTER_RULES for v in violations):
        return ""
    found = data_quarter(bundle)
    if found is None or found[0] == str(Quarter.parse(quarter)):
        return ""
    return f"the data cover {found[0]} ({found[1]}): did you mean --quarter {found[0]}?"


@dataclass(frozen=True)
class Checked:
    """A run that passed :func:`preflight`: its resolved options and fingerprint."""

    options: RunOptions
    fingerprint: Fingerprint
    #: :func:`input_notes` of the bundle checked (printed before the run starts)
    notes: tuple[Any, ...] = ()


def preflight(options: RunOptions) -> Checked:
    """Everything a run would refuse, checked before any orchestration starts.

    In order: the paths (``--out`` apart from ``--data``, usable, nothing created), the quarter
    already published (without ``force``), another run holding the quarter's lock, the published
    quarters the run reads (:func:`previous_record`), then the bundle: read, source feeds
    assembled and the input contracts checked (with ``quarantine``, only what would still stop
    the run). Raises :class:`SurveillanceError` (:class:`QuarterContractError` for contract
    violations, with the quarter the data cover when the requested one looks wrong). Writes
    nothing, so a refusal leaves ``--out`` as it was.
    """
    opts = options.resolved()
    store.check_apart(opts.data_dir, opts.out)
    store.check_output_dir(opts.out)
    target = store.run_directory(opts.out, opts.quarter)
    if target.exists() and not opts.force:
        raise store.AlreadyPublishedError(
            f"{target} already exists: pass --force to replace it with this run"
        )
    store.check_unlocked(opts.out, opts.quarter)
    fp = fingerprint(opts)
    catalogue = load_catalogue(opts.catalogue_path)
    bundle, assembly = read_inputs(opts.data_dir, catalogue, opts.quarter, opts.spells)
    try:
        validate(bundle, assembly, catalogue, opts.quarter, opts.quarantine)
    except ContractError as exc:
        raise QuarterContractError(
            exc.violations, quarter_hint(bundle, opts.quarter, exc.violations)
        ) from None
    return Checked(opts, fp, tuple(input_notes(bundle)))


def read_inputs(
    data_dir: Path, catalogue: pd.DataFrame, quarter: str, spells: str = "auto"
) -> tuple[Any, Assembly]:
    """The bundle and the quarter's assembled indicators, as the run reads them (``validate``
    and :func:`preflight` both check these); an unreadable file is one plain
    :class:`SurveillanceError`, never a traceback."""
    data_dir = Path(data_dir)
    bundle = _plainly(load, "the bundle", data_dir, data_dir, spells)
    feeds = data_dir / FEEDS_SUBDIR
    assembly = _plainly(assemble_sources, "a source feed", feeds, bundle, catalogue, quarter)
    return bundle, assembly


#: columns the source feeds are assembled by: without them the contracts are checked first
KEY_COLUMNS = {"trusts": ("trust_code",), "indicators": ("trust_code", "indicator_id")}


def check_key_columns(bundle: Any, catalogue: pd.DataFrame, quarter: str) -> None:
    """Stop with the contract violations of ``trusts`` / ``indicators`` (the file, its missing
    column, any other broken rule) when either lacks a column the feeds are assembled by (a
    renamed or ``;``-separated header), rather than fail inside a feed adapter."""
    from surveillance import contracts

    broken = [
        name
        for name, columns in KEY_COLUMNS.items()
        if any(c not in bundle.table(name).columns for c in columns)
    ]
    if not broken:
        return
    known = contracts.known_trusts(bundle)
    violations = []
    for name in broken:
        violations += contracts.validate_table(
            name,
            bundle.file_name(name),
            bundle.table(name),
            Quarter.parse(quarter),
            catalogue,
            known,
        )
    raise ContractError(violations)


def check_feed_files(feeds: Path) -> None:
    """Each ``feeds/*.csv`` non-empty UTF-8 text without a runaway line, each ``*.parquet`` a
    readable Parquet file: :class:`ContractError` (``file_unreadable``) naming ``feeds/<file>``
    and where, before an adapter parses it."""
    from dataclasses import replace

    import pyarrow.parquet as pq

    from surveillance.bundle import csv_layout, scan_text
    from surveillance.errors import Violation

    if not Path(feeds).is_dir():
        return
    violations = []
    for path in sorted(Path(feeds).iterdir()):
        name = f"{FEEDS_SUBDIR}/{path.name}"
        try:
            if path.suffix == ".csv":
                if path.stat().st_size == 0:
                    violations.append(Violation(name, "file_unreadable", "the file is empty"))
                    continue
                scan_text(path)
                csv_layout(path, name)  # a ragged row would shift the adapter's columns
            elif path.suffix == ".parquet":
                pq.ParquetFile(path)
        except ContractError as exc:
            violations.extend(replace(v, file=name) for v in exc.violations)
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a file that is not Parquet
            violations.append(Violation(name, "file_unreadable", f"not a Parquet file ({exc})"))
    if violations:
        raise ContractError(violations)


def validation_violations(
    bundle: Any, assembly: Assembly, catalogue: pd.DataFrame, quarter: str
) -> list:
    """Every contract violation of the bundle with its assembled indicators (what the run's
    :func:`validate` refuses without quarantine)."""
    return contract_violations(with_assembled_indicators(bundle, assembly), quarter, catalogue)


def with_assembled_indicators(bundle: Any, assembly: Assembly) -> Any:
    """The bundle with the assembled indicators in place of ``indicators.csv``, their row numbers
    those of the file (a row after one a feed superseded keeps its own number)."""
    from dataclasses import replace

    numbers = dict(getattr(bundle, "row_numbers", {}) or {})
    rows = getattr(assembly, "bundle_rows", None)
    if rows is not None and bundle.indicators is not None:
        file_numbers = numbers.get("indicators")
        if file_numbers is None:
            file_numbers = np.arange(1, len(bundle.indicators) + 1)
        mapped = np.asarray(file_numbers)[np.asarray(rows, dtype=np.int64)]
        if np.array_equal(mapped, np.arange(1, len(mapped) + 1)):
            numbers.pop("indicators", None)
        else:
            numbers["indicators"] = mapped
    else:
        numbers.pop("indicators", None)
    return replace(bundle, indicators=assembly.indicators, row_numbers=numbers)


def _plainly(fn, what: str, where: Path, *args):
    """``fn(*args)``, with an unexpected reading error turned into one plain message."""
    try:
        return fn(*args)
    except SurveillanceError:
        raise
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise SurveillanceError(f"{where}: {what} could not be read ({detail})") from None


# ============================================================================================
# the whole quarter without Prefect


@dataclass
class RunSummary:
    """What the CLI prints at the end of a run."""

    run_dir: Path
    run_id: str
    quarter: str
    band_counts: dict[str, int]
    new_alerts: int
    movers: pd.DataFrame
    report: Path | None
    missing_sources: list[dict[str, str]]
    excluded: list[str]
    quarantined: int
    seconds: float
    #: the previous quarter the run read (movement, persistence), or why none
    previous: str = ""
    #: the manifest's ``input_notes`` as text (conversions, normalised regions, unknown groups)
    input_notes: list[str] = field(default_factory=list)


def summarise(run_dir: Path) -> RunSummary:
    """Summary of a published run, read back from its files."""
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    timings_path = run_dir / TIMINGS_FILE
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    bands = pd.read_csv(run_dir / "bands.csv", dtype=str, keep_default_na=False)
    alerts = pd.read_csv(run_dir / "alerts.csv", dtype=str, keep_default_na=False)
    order = {str(b): b for b in range(1, 7)}
    counts = bands["band"].value_counts()
    band_counts = {
        b: int(counts[b]) for b in sorted(counts.index, key=lambda b: (order.get(b, 99), b))
    }
    moved = bands[bands["band"].isin(order) & bands["previous_band"].isin(order)].copy()
    moved["change"] = moved["previous_band"].map(order) - moved["band"].map(order)
    moved = moved[moved["change"] != 0]
    moved = moved.reindex(
        moved["change"].abs().sort_values(ascending=False, kind="mergesort").index
    )
    report = run_dir / "reports" / "index.html"
    return RunSummary(
        run_dir=run_dir,
        run_id=manifest.get("run_id", ""),
        quarter=manifest.get("quarter", ""),
        band_counts=band_counts,
        # charts whose first signal falls in the quarter (alerts.csv has a row per signal month)
        new_alerts=int(
            alerts.loc[alerts["status"] == "new", ["trust_code", "diagnosis_group"]]
            .drop_duplicates()
            .shape[0]
        ),
        movers=moved[["trust_code", "trust_name", "previous_band", "band", "change"]].head(10),
        report=report if report.is_file() else None,
        missing_sources=manifest.get("missing_sources", []),
        excluded=[e["indicator_id"] for e in manifest.get("left_out_of_banding", [])],
        quarantined=int(manifest.get("quarantined_rows", 0)),
        seconds=float(timings.get("total_seconds", 0.0)),
        previous=_previous_text(manifest.get("previous", {})),
        input_notes=[_note_text(n) for n in manifest.get("input_notes", [])],
    )


def _note_text(note: Mapping[str, Any]) -> str:
    from surveillance.bundle import InputNote

    return str(InputNote(**{k: note[k] for k in ("file", "column", "note", "message", "rows")}))


def _previous_text(record: Mapping[str, Any]) -> str:
    prior = record.get("previous_quarter")
    if not prior:
        return "none published (movement: new; no persistence)"
    run = f"run {prior['run_id']}" if prior.get("run_id") else "no manifest"
    return f"{prior['quarter']} ({run})"


def compute_quarter(
    options: RunOptions, timings: dict[str, float] | None = None
) -> tuple[Fingerprint, QuarterResults, pd.DataFrame]:
    """Every stage up to (not including) writing: fingerprint -> bands."""
    opts = options.resolved()
    timings = timings if timings is not None else {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[name] = time.perf_counter() - start
        return value

    fp = timed("fingerprint", fingerprint, opts)
    catalogue = timed("catalogue", load_catalogue, opts.catalogue_path)
    bundle = timed("load", load, opts.data_dir, opts.spells)
    assembly = timed("assemble", assemble_sources, bundle, catalogue, opts.quarter)
    validated = timed(
        "validate", validate, bundle, assembly, catalogue, opts.quarter, opts.quarantine
    )
    derived = timed("derive", derive, validated.bundle, catalogue, opts.quarter)
    mort = timed("mortality", mortality, validated.bundle, catalogue, opts.quarter)
    previous_bands, previous_flags = previous_outputs(opts, fp.previous)
    flags = timed(
        "assess",
        assess_flags,
        validated,
        derived,
        mort,
        assembly,
        catalogue,
        opts.quarter,
        previous_flags,
    )
    bands = timed(
        "band",
        band,
        flags,
        validated.bundle.trusts,
        opts.quarter,
        previous_bands,
        banding_config_path(opts),
    )
    results = QuarterResults(
        flags,
        bands,
        mort,
        assembly,
        validated,
        excluded_indicators(flags),
        wards=derived.wards,
        band_history=band_history(opts),
    )
    return fp, results, catalogue


def write_and_publish(
    options: RunOptions,
    fp: Fingerprint,
    results: QuarterResults,
    catalogue: pd.DataFrame,
    timings: dict[str, float],
    extra_timings: Mapping[str, Any] | None = None,
    hold_lock: bool = True,
) -> Path:
    """Write everything into a staging directory and publish it atomically."""
    opts = options.resolved()
    with store.staged_run(opts.out, opts.quarter, force=opts.force, hold_lock=hold_lock) as staging:
        start = time.perf_counter()
        counts = write_outputs(staging, results, catalogue, opts.quarter)
        from surveillance.run_readme import DICTIONARY_FILE, write_run_description

        # README.md and data_dictionary.csv: the folder describes itself (issue 16)
        others = ["manifest.json", "timings.json", "models/", "reports/"]
        others = [o for o in others if o != "reports/" or opts.render_reports]
        if not (staging / "models").is_dir():
            others.remove("models/")
        write_run_description(staging, fp.quarter, fp.run_id, fp.code, others)
        counts = {**counts, DICTIONARY_FILE: count_rows(staging / DICTIONARY_FILE)}
        timings["write"] = time.perf_counter() - start
        # once: counting the diagnosis groups reads a column of every spell
        notes = [n.to_dict() for n in input_notes(results.validated.bundle)]
        if opts.render_reports:
            start = time.perf_counter()
            render_reports(staging, catalogue, fp, notes)
            timings["report"] = time.perf_counter() - start
        finish_manifest(staging, fp, results, catalogue, counts, notes)
        write_timings(staging, timings, dict(extra_timings or {}))
    return store.run_directory(opts.out, opts.quarter)


def run_quarter(options: RunOptions) -> RunSummary:
    """The quarter end to end without Prefect: lock, compute, write, publish, summarise."""
    opts = options.resolved()
    store.check_apart(opts.data_dir, opts.out)
    root = store.ensure_output_dir(opts.out)
    with store.quarter_lock(root, opts.quarter):
        target = store.run_directory(root, opts.quarter)
        if target.exists() and not opts.force:
            raise store.AlreadyPublishedError(
                f"{target} already exists: pass --force to replace it with this run"
            )
        store.clean_stale(root, opts.quarter)
        timings: dict[str, float] = {}
        fp, results, catalogue = compute_quarter(opts, timings)
        extra: dict[str, Any] = {}
        if opts.mlflow:
            start = time.perf_counter()
            extra.update(track(opts.out, fp, results.flags, results.bands, results.mortality))
            timings["mlflow"] = time.perf_counter() - start
        run_dir = write_and_publish(opts, fp, results, catalogue, timings, extra, hold_lock=False)
    return summarise(run_dir)


# ============================================================================================
# the monthly mortality run (between quarters)

MONTHLY_ALERT_KEYS = ["trust_code", "diagnosis_group", "signal_month"]


def parse_month(month: str) -> str:
    """``YYYY-MM`` checked (a clear error otherwise)."""
    text = str(month).strip()
    try:
        period = pd.Period(text, freq="M")
    except (ValueError, TypeError):
        raise SurveillanceError(f"--month must look like 2013-08, got {month!r}") from None
    if period.strftime("%Y-%m") != text:
        raise SurveillanceError(f"--month must look like 2013-08, got {month!r}")
    return text


def latest_risk_model(out: Path, month: str) -> Path:
    """The charts' model of the latest published quarter ending before ``month``:
    ``models/alert_model.json`` (the alert model and its baseline), or ``models/risk_model.json``
    for a quarter published before the alert model existed.

    The monthly run reuses the models fitted by the quarterly run (no refit between quarters).
    """
    month = parse_month(month)
    first_day = pd.Period(month, freq="M").start_time
    candidates = [r for r in store.published_runs(out) if Quarter.parse(r.quarter).end < first_day]
    for run in reversed(candidates):
        # the alert charts' model (with its typical-trust baseline) where the quarter has one
        for name in ("alert_model.json", "risk_model.json"):
            path = run.path / "models" / name
            if path.is_file():
                return path
    raise SurveillanceError(
        f"no published quarter before {month} in {out} has models/risk_model.json: "
        "run the quarter first (surveillance run)"
    )


def monthly_alerts(bundle: Any, model_path: Path, month: str) -> pd.DataFrame:
    """RA-CUSUM alerts of the 12 months to ``month`` with the saved risk models (``alerts.csv``;
    ``new``: first signal in ``month``)."""
    from surveillance.mortality.monitor import monitor_month
    from surveillance.mortality.risk_model import RiskModel

    model = RiskModel.load(model_path)
    month = parse_month(month)
    return monitor_month(monthly_spells(bundle, model, month), model, month)


def monthly_spells(bundle: Any, model: Any, month: str) -> pd.DataFrame:
    """The spells the monthly charts read: the bundle's spells in memory, or, when a large
    ``spells.parquet`` was left on disk (``Bundle.spells_source``, :func:`load`), the rows whose
    period date (the model's ``period_date``) falls in the window's months to ``month``, read one
    row group at a time so the whole file is never held."""
    from surveillance.bundle import read_rows
    from surveillance.mortality.encode import SPELL_COLUMNS, month_number
    from surveillance.mortality.monitor import load_cusum_settings

    if bundle.spells is not None:
        return bundle.spells
    source = getattr(bundle, "spells_source", None)
    if source is None:
        raise SurveillanceError(f"{bundle.directory}: the monthly run needs spells (none found)")
    end = month_number(month)
    first = end - load_cusum_settings().months + 1
    column = model.spec.period_date
    parts = []
    for start, stop in source.chunks:
        rows = read_rows(source.path, "spells", start, stop, list(SPELL_COLUMNS))
        dates = pd.to_datetime(rows[column])
        months = (dates.dt.year - 1970) * 12 + dates.dt.month - 1
        parts.append(rows[((months >= first) & (months <= end)).to_numpy()])
    return pd.concat(parts, ignore_index=True)


def run_month(
    data_dir: Path,
    out: Path,
    month: str,
    force: bool = False,
    code: Mapping[str, Any] | None = None,
) -> Path:
    """The monthly mortality run without Prefect: publish ``<out>/monthly/<month>/``."""
    month = parse_month(month)
    root = store.ensure_output_dir(out)
    model_path = latest_risk_model(root, month)
    bundle = load(Path(data_dir))
    alerts = monthly_alerts(bundle, model_path, month)
    return publish_month(root, month, alerts, Path(data_dir), model_path, force, code)


def publish_month(
    out: Path,
    month: str,
    alerts: pd.DataFrame,
    data_dir: Path,
    model_path: Path,
    force: bool = False,
    code: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``alerts.csv`` and a manifest for the month and publish them atomically."""
    files = {k: v for k, v in input_files(data_dir).items() if k.startswith("spells.")}
    inputs = {n: {"path": n, "sha256": sha256_file(p)} for n, p in sorted(files.items())}
    model_sha = sha256_file(model_path)
    code = dict(code or current_code_version())
    rid = run_id(month, inputs, "", {"risk_model.json": model_sha}, code)
    from surveillance.output_contracts import check_output

    alerts = ordered(alerts, ALERTS_COLUMNS, ADDED_COLUMNS["alerts.csv"])
    check_output("alerts.csv", alerts, period=month)
    with store.staged_run(out, month, force=force) as staging:
        store.write_csv(alerts, staging / "alerts.csv", sort_by=MONTHLY_ALERT_KEYS)
        from surveillance.run_readme import write_run_description

        # README.md, data_dictionary.csv
        write_run_description(staging, month, rid, code, others=("manifest.json",))
        model_run = model_path.parent.parent.name
        manifest = Manifest(
            run_id=rid,
            quarter=month,
            inputs=inputs,
            catalogue_sha256="",
            model_configs={f"{model_run}/models/risk_model.json": model_sha},
            code_version=code,
            options={"kind": "monthly_mortality", "risk_model_from": model_run},
            row_counts={
                name: count_rows(staging / name) for name in ("alerts.csv", "data_dictionary.csv")
            },
            outputs=hash_outputs(staging),
            input_notes=[n.to_dict() for n in unseen_group_notes(data_dir, model_path)],
        )
        write_manifest(manifest, staging)
    return store.run_directory(out, month)


def unseen_group_notes(data_dir: Path, model_path: Path) -> list[Any]:
    """One ``unknown_value`` note naming the diagnosis groups of the month's spells that the
    saved risk model never saw (their spells get the national crude rate), with spell counts;
    empty when the model knows every group."""
    from surveillance.bundle import InputNote
    from surveillance.mortality.risk_model import RiskModel

    files = {k: v for k, v in input_files(Path(data_dir)).items() if k.startswith("spells.")}
    if not files:
        return []
    file, path = next(iter(sorted(files.items())))
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        groups = pq.read_table(path, columns=["diagnosis_group"]).column(0).to_pandas()
    else:
        groups = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=["diagnosis_group"])[
            "diagnosis_group"
        ]
    counts = groups.astype("string").value_counts(dropna=True)
    known = set(RiskModel.load(model_path).group_names_)
    unseen = counts[(counts > 0) & ~counts.index.isin(list(known))]
    if unseen.empty:
        return []
    unseen = unseen.sort_index(kind="mergesort").sort_values(ascending=False, kind="mergesort")
    named = [f"{str(g)[:80]!r} {int(n):,} spell(s)" for g, n in unseen.head(NAMED_GROUPS).items()]
    more = len(unseen) - len(named)
    listing = "; ".join(named) + (f"; and {more} more group(s)" if more > 0 else "")
    model_run = Path(model_path).parent.parent.name
    message = (
        f"{len(unseen)} diagnosis group(s) the risk model of {model_run} never saw: {listing}; "
        "their spells are charted against the national crude rate"
    )
    return [InputNote(file, "diagnosis_group", "unknown_value", message, int(unseen.sum()))]


# ============================================================================================
# re-rendering a published run's reports


def rerender_reports(run_dir: Path, out_dir: Path | None = None) -> Path:
    """Render a published run's reports again (e.g. after the reports module changed).

    With ``out_dir`` the site goes there and the run is untouched. Otherwise the run is
    republished atomically: copied to a staging directory under the quarter's lock, its
    ``reports/`` rebuilt and its manifest's output hashes (and ``reports_code_version``) updated,
    then swapped into place, so ``surveillance verify`` still holds afterwards.
    """
    import shutil

    from surveillance.manifest import read_manifest

    run_dir = Path(run_dir).resolve()
    manifest = read_manifest(run_dir)
    catalogue = load_catalogue()
    try:
        from surveillance.reports.site import build_site
    except ImportError:
        raise SurveillanceError(
            "the reports module is not available in this installation"
        ) from None
    if out_dir is not None:
        return build_site(run_dir, out_dir=Path(out_dir), catalogue=catalogue)
    out, quarter = run_dir.parent, run_dir.name
    with store.quarter_lock(out, quarter):
        staging = store.staging_directory(out, quarter)
        try:
            shutil.copytree(run_dir, staging, dirs_exist_ok=True)
            shutil.rmtree(staging / "reports", ignore_errors=True)
            index = build_site(staging, catalogue=catalogue)
            manifest["outputs"] = hash_outputs(staging)
            manifest["reports_code_version"] = current_code_version()
            store.write_json(manifest, staging / "manifest.json")
            store.publish(staging, out, quarter, force=True)
        except BaseException:
            store.discard(staging)
            raise
    return run_dir / index.relative_to(staging)
