"""Command-line interface (Typer): `surveillance --help`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Hospital quality surveillance.")


@app.callback()
def main() -> None:
    """Hospital quality surveillance: synthesise, validate, run, report, verify."""


@app.command()
def version() -> None:
    """Print the package version."""
    from surveillance import __version__

    typer.echo(__version__)


def _parse_quarter_option(text: str) -> str:
    from surveillance.periods import Quarter

    try:
        return str(Quarter.parse(text))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def validate(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            exists=True,
            file_okay=False,
            dir_okay=True,
            readable=True,
            help="Bundle directory (DESIGN.md section 4).",
        ),
    ],
    quarter: Annotated[
        str | None,
        typer.Option(
            "--quarter",
            callback=lambda text: None if text is None else _parse_quarter_option(text),
            help="Run quarter, e.g. 2013Q3 (default: the quarter the data cover, said so).",
        ),
    ] = None,
    catalogue: Annotated[
        Path | None,
        typer.Option(
            "--catalogue", exists=True, dir_okay=False, help="Catalogue YAML (default: packaged)."
        ),
    ] = None,
) -> None:
    """Check a bundle (source feeds included) against the input contracts; print every
    violation; never modify the input.

    Exit status: 0 clean, 1 violations, 2 usage error. Rows are 1-based data rows (the header is
    line 1 of a CSV, so data row N is line N + 1).
    """
    from rich.console import Console
    from rich.table import Table

    from surveillance import pipeline
    from surveillance.catalogue import load_catalogue
    from surveillance.errors import ConfigError, ContractError, SurveillanceError

    console = Console(width=200, soft_wrap=True)
    try:
        cat = load_catalogue(catalogue)
    except ConfigError as exc:
        console.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    hint = ""
    try:
        if quarter is None:
            found = pipeline.data_quarter(pipeline.load(data, "auto"))
            if found is None:
                typer.echo("--quarter not given and the bundle has no dates to infer it from")
                raise typer.Exit(2)
            quarter = found[0]
            typer.echo(
                f"no --quarter given: checking for {quarter}, the quarter the data cover "
                f"({found[1]})"
            )
        # a large spells.parquet is checked by row group, not read whole (spells="auto"), and
        # the indicators are those the run assembles from the source feeds
        bundle, assembly = pipeline.read_inputs(data, cat, quarter)
        violations = pipeline.validation_violations(bundle, assembly, cat, quarter)
        hint = pipeline.quarter_hint(bundle, quarter, violations)
        notes = pipeline.input_notes(bundle)
    except ContractError as exc:
        violations, notes = exc.violations, []
    except SurveillanceError as exc:
        typer.echo(f"error: {exc}")
        raise typer.Exit(1) from None
    _print_notes(notes)
    if not violations:
        console.print(f"{data}: valid for {quarter} (no contract violations)", markup=False)
        raise typer.Exit(0)
    table = Table(title=f"{len(violations)} contract violation(s) in {data} for {quarter}")
    for heading in ("file", "rows", "column", "rule", "message"):
        table.add_column(heading, overflow="fold")
    from rich.markup import escape

    for v in violations:  # escaped: file text such as "[b]" in a message is not Rich markup
        rows = ", ".join(str(r) for r in v.rows)
        table.add_row(escape(v.file), rows, escape(v.column or ""), v.rule, escape(v.message))
    console.print(table)
    console.print("rows are 1-based data rows (CSV line = row + 1)", markup=False)
    if hint:
        console.print(hint, markup=False)
    raise typer.Exit(1)


def _print_notes(notes) -> None:
    """Input notes (accepted, but converted, normalised or unknown to the models), one a line."""
    if notes:
        typer.echo(f"{len(notes)} input note(s) (accepted; recorded in the run's manifest):")
        for note in notes:
            typer.echo(f"  - {note}")


@app.command()
def synth(
    seed: int = typer.Option(2013, "--seed", help="Random seed: same seed, same bytes."),
    scale: str = typer.Option(
        "demo",
        "--scale",
        help="test (tiny), demo (~1 million spells), m5 (~5 million), m15 (~15 million) or "
        "national (45 million).",
    ),
    quarter: str = typer.Option(
        "2013Q3", "--quarter", callback=_parse_quarter_option, help="Last quarter to build."
    ),
    quarters: int = typer.Option(
        2, "--quarters", min=1, help="How many quarters (bundles) ending at --quarter."
    ),
    out: str = typer.Option("data/synth", "--out", help="Output directory."),
    world: str = typer.Option(
        "default",
        "--world",
        help="default, or harder (worse minority of trusts, true palliative risk, age not "
        "linear in bands, clustered OR 2/3 deteriorations; writes the oracle risk sidecar).",
    ),
) -> None:
    """Build the synthetic nation: one input bundle per quarter in OUT/<quarter>/ plus
    OUT/ground_truth.json (failing trusts, planted deteriorations, true risk model)."""
    from surveillance.errors import ConfigError
    from surveillance.synth import synthesise
    from surveillance.synth.config import WORLDS, load_nation_config

    scales = list(load_nation_config().scales)
    if scale not in scales:
        raise typer.BadParameter(f"scale must be one of {', '.join(scales)}", param_hint="--scale")
    if world not in WORLDS:
        raise typer.BadParameter(f"world must be one of {', '.join(WORLDS)}", param_hint="--world")
    out_dir = Path(out)
    try:
        summary = synthesise(
            out_dir, seed=seed, scale=scale, quarter=quarter, quarters=quarters, world=world
        )
    except (ConfigError, ValueError) as exc:
        typer.echo(f"synth: {exc}", err=True)
        raise typer.Exit(2) from None
    for q in summary.quarters:
        c = summary.counts[q]
        typer.echo(
            f"{out_dir / q}: {c['trusts']} trusts, {c['indicators']:,} indicator rows, "
            f"{c['spells']:,} spells, {c['staffing']:,} staffing rows, "
            f"{c['intelligence']:,} intelligence items, {c['inspections']:,} inspections"
        )
    typer.echo(
        f"{out_dir / 'ground_truth.json'}: ground truth (seed {seed}, scale {scale}, world {world})"
    )


@app.command()
def assemble(
    sources: Annotated[
        Path,
        typer.Option(
            "--sources", exists=True, file_okay=False, help="Directory of the publishers' files."
        ),
    ],
    quarter: Annotated[
        str,
        typer.Option("--quarter", callback=_parse_quarter_option, help="Quarter, e.g. 2023Q3."),
    ],
    out: Annotated[Path, typer.Option("--out", help="New bundle directory to write.")],
) -> None:
    """Build a bundle from the publishers' real files: ODS trusts and the feeds as released.

    Every feed is validated by its adapter first; a file the service does not recognise is
    refused (file, sheet, column named) and nothing is written. Then `surveillance run --data
    OUT --quarter Q` screens the real trusts.
    """
    from rich.console import Console

    from surveillance.errors import SurveillanceError
    from surveillance.sources.real import assemble_bundle

    console = Console(width=200, soft_wrap=True)
    try:
        built = assemble_bundle(sources, quarter, out)
    except SurveillanceError as exc:
        console.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    types = built.trusts["trust_type"].value_counts().to_dict()
    console.print(
        f"{out}: {len(built.trusts)} real trusts for {quarter} "
        + ", ".join(f"{n} {t}" for t, n in sorted(types.items())),
        markup=False,
    )
    for name, files in built.feeds.items():
        console.print(f"  {name}: {', '.join(files)}", markup=False)
    for name in built.absent:
        console.print(f"  {name}: not in {sources} (its indicators will be missing)", markup=False)


@app.command()
def demo(
    out: str = typer.Option("data/synth", "--out", help="Where the synthetic nation lives."),
    runs: str = typer.Option("out", "--runs", help="Where the quarterly runs are published."),
    runner: str = typer.Option("local", "--runner", help="local or dask."),
) -> None:
    """Build the synthetic nation if absent, run the quarterly flow on each of its quarters
    (the last one always, earlier ones when not yet published), print the band table and
    where the report is."""
    import time

    from rich.console import Console
    from rich.table import Table

    from surveillance import store
    from surveillance.synth.demo import ensure_nation, summary_rows

    console = Console()
    started = time.perf_counter()
    out_dir = Path(out)
    with console.status("building the synthetic nation (first run only)"):
        built, truth = ensure_nation(out_dir)
    typer.echo(f"{'Built' if built else 'Found'} the synthetic nation in {out}")
    table = Table(title=f"Synthetic nation (seed {truth['seed']}, scale {truth['scale']})")
    table.add_column("what")
    for q in truth["quarters"]:
        table.add_column(q, justify="right")
    for row in summary_rows(out_dir, truth):
        table.add_row(*row)
    console.print(table)

    quarters = list(truth["quarters"])
    summary = None
    for i, quarter in enumerate(quarters):
        last = i == len(quarters) - 1
        if not last and store.run_directory(runs, quarter).is_dir():
            typer.echo(f"{quarter}: already published in {runs}")
            continue
        summary = _run_quarter_flow(
            console, out_dir / quarter, quarter, Path(runs), runner, None, True, False
        )
        typer.echo(f"{quarter}: published {summary.run_dir}")
    _print_band_table(console, summary.run_dir)
    _print_summary(console, summary)
    typer.echo(f"demo finished in {time.perf_counter() - started:.1f} s; open {summary.report}")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_band_table(console, run_dir: Path, rows: int = 15) -> None:
    """The ranked band table (band 1 first, highest proportion score first within a band)."""
    import pandas as pd
    from rich.table import Table

    bands = pd.read_csv(run_dir / "bands.csv", dtype=str, keep_default_na=False)
    order = {str(b): b for b in range(1, 7)}
    bands["_band"] = bands["band"].map(order).fillna(9)
    bands["_p"] = pd.to_numeric(bands["proportion_score"], errors="coerce").fillna(-1)
    bands = bands.sort_values(["_band", "_p", "trust_code"], ascending=[True, False, True])

    # one line per trust at 80 columns: no rules, trust names and regions cut to the
    # width left by the short columns (56 characters with the padding)
    table = Table(
        title=f"Priority bands, {run_dir.name} (top {rows} of {len(bands)})",
        box=None,
        padding=(0, 1),
        pad_edge=False,
    )
    trust_width = max(20, (console.width or 80) - 56)
    for heading in ("band", "trust", "region", "risks", "elev.", "score", "P(1)", "moved"):
        table.add_column(heading, no_wrap=True)
    for r in bands.head(rows).itertuples():
        table.add_row(
            r.band,
            _cut(f"{r.trust_code} {r.trust_name}", trust_width),
            _cut(r.region, 10),
            r.risks,
            r.elevated_risks,
            f"{float(r.proportion_score):.3f}" if r.proportion_score else "",
            r.p_band_1,
            f"{r.previous_band or '-'} -> {r.band}" if r.movement != "same" else "same",
        )
    console.print(table)


# ------------------------------------------------------------------------------------------
# run / verify / deploy / report (orchestration, storage and provenance)

#: the quarterly flow's stages, for the progress bar (task names in flows/tasks.py)
_STAGES = (
    "fingerprint",
    "catalogue",
    "load",
    "assemble",
    "validate",
    "derive",
    "mortality",
    "assess",
    "band",
    "mlflow",
    "publish",
)


def _flows():
    """Import ``flows`` (it lives at the project root, beside the package)."""
    import importlib
    import os
    import sys

    # Prefect's embedded server can take longer than its 20 s default to start on a busy machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    # the embedded server's telemetry fails noisily on machines without internet access
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # ... and so does the SDK's, whose first-run notice is printed even with the above off
    os.environ.setdefault("DO_NOT_TRACK", "1")

    root = Path(__file__).resolve().parents[1]
    if (root / "flows" / "__init__.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module("flows")
    except ImportError as exc:  # pragma: no cover - installed without the flows directory
        raise typer.BadParameter(f"the Prefect flows are not available: {exc}") from None


class _StageProgress:
    """Advance a Rich progress bar as the flow's task runs finish (a logging handler); with no
    progress bar (stdout not a terminal: cron, CI logs) print one plain line per stage."""

    def __init__(self, progress, task_id, quarter: str = ""):
        import logging
        import time

        self.progress, self.task_id, self.quarter = progress, task_id, quarter
        self.started = time.perf_counter()
        self.done: set[str] = set()
        self.handler = logging.Handler()
        self.handler.emit = self._emit  # type: ignore[method-assign]

    def _emit(self, record) -> None:
        import time

        name = getattr(record, "task_name", None) or ""
        message = record.getMessage()
        if name in _STAGES and "Finished in state" in message and name not in self.done:
            self.done.add(name)
            if self.progress is None:
                seconds = time.perf_counter() - self.started
                typer.echo(f"{self.quarter}: {name} done ({seconds:.1f} s)")
            else:
                self.progress.update(self.task_id, advance=1, description=f"{name} done")

    def __enter__(self):
        import logging

        logging.getLogger("prefect.task_runs").addHandler(self.handler)
        return self

    def __exit__(self, *exc) -> None:
        import logging

        logging.getLogger("prefect.task_runs").removeHandler(self.handler)


def _quiet_prefect_console() -> None:
    """Show only Prefect's warnings on the console (the progress bar tells the stages).

    Prefect logs task runs at INFO through a console handler on the root logger; raising that
    handler's level keeps the records flowing to the API and to :class:`_StageProgress`. Its
    error records (a failed task or flow, with the traceback) are kept off the console too: the
    run prints the failure itself, in one message.
    """
    import logging

    from prefect.logging.configuration import setup_logging

    setup_logging()
    for handler in logging.getLogger().handlers:
        if type(handler).__name__ == "PrefectConsoleHandler":
            handler.setLevel(logging.WARNING)
            if not any(isinstance(f, _NoPrefectErrors) for f in handler.filters):
                handler.addFilter(_NoPrefectErrors())
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            if type(handler).__name__ == "PrefectConsoleHandler":
                handler.setLevel(logging.WARNING)
                if not any(isinstance(f, _NoPrefectErrors) for f in handler.filters):
                    handler.addFilter(_NoPrefectErrors())
    logging.getLogger("distributed").setLevel(logging.WARNING)


class _NoPrefectErrors:
    """Logging filter: drop Prefect's error records (task / flow failures and their tracebacks)."""

    def filter(self, record) -> bool:
        import logging

        return not (record.levelno >= logging.ERROR and record.name.startswith("prefect"))


def _print_summary(console, summary) -> None:
    from rich.table import Table

    table = Table(title=f"{summary.quarter}: run {summary.run_id}", show_header=False)
    table.add_column("what")
    table.add_column("value", overflow="fold")
    bands = ", ".join(f"{b}: {n}" for b, n in summary.band_counts.items())
    table.add_row("bands", bands)
    if summary.previous:
        table.add_row("previous quarter", summary.previous)
    table.add_row("new mortality alerts", str(summary.new_alerts))
    movers = ", ".join(
        f"{r.trust_code} {r.previous_band}->{r.band}" for r in summary.movers.head(5).itertuples()
    )
    table.add_row("biggest movers", movers or "none (no previous quarter or no change)")
    table.add_row("missing or late sources", str(len(summary.missing_sources)))
    table.add_row("indicators left out of banding", str(len(summary.excluded)))
    if summary.quarantined:
        table.add_row("rows quarantined", f"{summary.quarantined} (see quarantine.csv)")
    if summary.input_notes:
        from rich.markup import escape

        table.add_row(  # escaped: "[converted]" is text, not Rich markup
            f"input notes ({len(summary.input_notes)}, in manifest.json)",
            escape("\n".join(summary.input_notes)),
        )
    table.add_row("outputs", str(summary.run_dir))
    table.add_row("report", str(summary.report) if summary.report else "not rendered")
    table.add_row("wall time", f"{summary.seconds:.1f} s")
    console.print(table)


def _run_quarter_flow(
    console,
    data: Path,
    quarter: str,
    out: Path,
    runner: str,
    dask_address: str | None,
    force: bool,
    quarantine: bool,
    mlflow: bool = True,
    spells: str | None = None,
):
    """Check first, then run the quarterly flow with a progress bar; return the run summary.

    :func:`surveillance.pipeline.preflight` checks the arguments, the output directory, the
    published quarters and the inputs before Prefect is imported, so a refusal takes seconds and
    prints one message (exit 1, or 2 for a usage error) with nothing left in ``--out``.
    """
    import time

    from surveillance import pipeline
    from surveillance.errors import SurveillanceError

    started = time.perf_counter()
    _flows()
    from flows.runners import check_runner

    try:
        check_runner(runner, dask_address)
        options = pipeline.RunOptions(
            data_dir=data,
            quarter=quarter,
            out=out,
            force=force,
            quarantine=quarantine,
            mlflow=mlflow,
            spells=spells or "auto",
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    out_existed = Path(out).exists()
    try:
        checked = pipeline.preflight(options)
    except SurveillanceError as exc:
        _refuse(exc, out, out_existed)
    typer.echo(
        f"{quarter}: inputs checked in {time.perf_counter() - started:.1f} s "
        f"(run {checked.fingerprint.run_id})"
    )
    _print_notes(checked.notes)
    try:
        result = _orchestrate(console, checked, runner, dask_address, quarter, spells)
    except SurveillanceError as exc:
        _refuse(exc, out, out_existed)
    except Exception as exc:  # noqa: BLE001 - one message, not a traceback; see SURVEILLANCE_TRACEBACK
        import os

        if os.environ.get("SURVEILLANCE_TRACEBACK"):
            raise
        _refuse(exc, out, out_existed, unexpected=True)
    summary = pipeline.summarise(Path(result["run_dir"]))
    summary.seconds = time.perf_counter() - started
    return summary


def _orchestrate(console, checked, runner, dask_address, quarter, spells) -> dict:
    """The quarterly flow for a checked run, on the configured or an embedded Prefect server."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from flows.quarterly import quarterly
    from flows.runners import task_runner
    from flows.server import prefect_api

    options = checked.options
    flow = quarterly.with_options(task_runner=task_runner(runner, dask_address))
    _quiet_prefect_console()
    arguments = {
        "data_dir": str(options.data_dir),
        "out": str(options.out),
        "quarter": options.quarter,
        "force": options.force,
        "quarantine": options.quarantine,
        "spells": spells,
        "mlflow": options.mlflow,
        "checked_run_id": checked.fingerprint.run_id,
    }
    with prefect_api(typer.echo):
        if not console.is_terminal:
            typer.echo(f"{quarter}: running the quarterly flow")
            with _StageProgress(None, None, quarter):
                return flow(**arguments)
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[q]}"),
            BarColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            total = len(_STAGES) - (not options.mlflow)
            task_id = progress.add_task("starting the flow", total=total, q=quarter)
            with _StageProgress(progress, task_id, quarter):
                return flow(**arguments)


def _refuse(exc: Exception, out: Path, out_existed: bool, unexpected: bool = False):
    """Print why nothing was published (one message, no traceback) and exit 1.

    An ``--out`` this run created and left empty is removed, so a refused run leaves nothing.
    """
    import contextlib

    from surveillance.errors import ContractError

    if isinstance(exc, ContractError):
        typer.echo(str(exc))
        if getattr(exc, "hint", ""):
            typer.echo(exc.hint)
    elif unexpected:
        typer.echo(f"error: {type(exc).__name__}: {exc} (SURVEILLANCE_TRACEBACK=1 shows where)")
    else:
        typer.echo(f"error: {exc}")
    typer.echo("nothing was published")
    if not out_existed:
        with contextlib.suppress(OSError):
            Path(out).rmdir()  # only if empty
    raise typer.Exit(1) from None


@app.command()
def run(
    data: Annotated[
        Path,
        typer.Option("--data", exists=True, file_okay=False, help="Input bundle directory."),
    ],
    quarter: Annotated[
        str,
        typer.Option("--quarter", callback=_parse_quarter_option, help="Quarter, e.g. 2013Q3."),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output directory (one subdirectory per quarter).")
    ] = Path("out"),
    runner: Annotated[str, typer.Option("--runner", help="local or dask.")] = "local",
    dask_address: Annotated[
        str | None,
        typer.Option(
            "--dask-address",
            help="Dask scheduler, e.g. tcp://host:8786 (default with "
            "--runner dask: a local cluster of 2 workers).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an already published quarter.")
    ] = False,
    quarantine: Annotated[
        bool, typer.Option("--quarantine", help="Set bad input rows aside in quarantine.csv.")
    ] = False,
    mlflow: Annotated[
        bool,
        typer.Option("--mlflow/--no-mlflow", help="Log the run to MLflow (OUT/mlflow.db)."),
    ] = True,
    spells: Annotated[
        str | None,
        typer.Option(
            "--spells",
            help="memory (read the spells whole), chunked (by Parquet row group: a Dask data "
            "frame with --runner dask, the default there; streamed two row groups at a time "
            "otherwise: 2.5 GiB instead of 8.6 for a national quarter, and quicker) or auto "
            "(the local default: chunked from 5 million spells). Same outputs.",
        ),
    ] = None,
) -> None:
    """Run the quarterly flow and publish OUT/QUARTER atomically (flags, alerts, mortality, bands,
    reports, manifest). Nothing is published if any stage fails; a rerun resumes from the cache."""
    from rich.console import Console

    console = Console()
    if spells is not None and spells not in ("auto", "memory", "chunked"):
        raise typer.BadParameter(f"--spells must be auto, memory or chunked, got {spells!r}")
    summary = _run_quarter_flow(
        console, data, quarter, out, runner, dask_address, force, quarantine, mlflow, spells
    )
    _print_summary(console, summary)


@app.command()
def verify(
    run_dir: Annotated[Path, typer.Argument(help="A published run, e.g. out/2013Q3.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", exists=True, file_okay=False, help="Re-hash the input bundle too."),
    ] = None,
) -> None:
    """Recompute the hashes of a published run (and its inputs with --data) against its manifest.

    Exit status 0 when every file matches, 1 when any file changed, is missing or unexpected.
    """
    from rich.console import Console
    from rich.table import Table

    from surveillance import pipeline
    from surveillance.errors import SurveillanceError
    from surveillance.manifest import verify_run

    console = Console()
    try:
        result = verify_run(
            run_dir,
            data,
            catalogue_path=pipeline.default_catalogue_path(),
            model_config_paths=pipeline.default_model_configs(),
        )
    except SurveillanceError as exc:
        typer.echo(f"error: {exc}")
        raise typer.Exit(2) from None
    for note in result.notes:
        typer.echo(note)
    if result.ok:
        typer.echo(f"{run_dir}: OK, {result.checked} file(s) match manifest {result.run_id}")
        return
    table = Table(title=f"{run_dir}: {len(result.mismatches)} mismatch(es)")
    for heading in ("kind", "file", "problem", "manifest sha256", "on disk sha256"):
        table.add_column(heading, overflow="fold")
    for m in result.mismatches:
        table.add_row(m.kind, m.name, m.problem, (m.expected or "")[:16], (m.actual or "")[:16])
    console.print(table)
    raise typer.Exit(1)


@app.command()
def deploy(
    data: Annotated[
        Path, typer.Option("--data", help="Bundle directory the scheduled runs read.")
    ] = Path("data/current"),
    out: Annotated[
        Path, typer.Option("--out", help="Output directory of the scheduled runs.")
    ] = Path("out"),
    work_pool: Annotated[
        str | None, typer.Option("--work-pool", help="Register for this work pool's workers.")
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Serve the deployments from this process (blocks).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show the schedules and the next run dates.")
    ] = False,
) -> None:
    """Register the quarterly deployment (first working day after each quarter, Europe/London)
    and the monthly mortality deployment with the Prefect API (PREFECT_API_URL)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from rich.console import Console
    from rich.table import Table

    _flows()
    from flows import deploy as deploy_module
    from flows import schedule

    console = Console()
    now = dt.datetime.now(ZoneInfo(schedule.TIMEZONE))
    table = Table(title="Schedules (Europe/London)")
    for heading in ("deployment", "cron", "next runs"):
        table.add_column(heading)
    table.add_row(
        deploy_module.QUARTERLY_NAME,
        f"{schedule.QUARTERLY_CRON} (+ first-working-day guard)",
        ", ".join(d.isoformat() for d in deploy_module.next_quarterly_runs(now, 4)),
    )
    table.add_row(
        deploy_module.MONTHLY_NAME,
        schedule.MONTHLY_CRON,
        ", ".join(d.isoformat() for d in deploy_module.next_monthly_runs(now, 3)),
    )
    console.print(table)
    if dry_run:
        return
    ids = deploy_module.deploy(data, out, work_pool=work_pool, serve=serve)
    for deployment_id in ids:
        typer.echo(f"registered deployment {deployment_id}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A published run, e.g. out/2013Q3.")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", help="Write the site here instead of republishing the run."),
    ] = None,
) -> None:
    """Re-render a run's reports (static HTML site). In place, the run is republished atomically
    with its manifest updated, so `surveillance verify` still passes."""
    from surveillance import pipeline
    from surveillance.errors import SurveillanceError

    try:
        index = pipeline.rerender_reports(run_dir, out_dir)
    except SurveillanceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"report: {index}")


if __name__ == "__main__":  # pragma: no cover
    app()
