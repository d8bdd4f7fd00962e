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
        str,
        typer.Option("--quarter", callback=_parse_quarter_option, help="Run quarter, e.g. 2013Q3."),
    ],
    catalogue: Annotated[
        Path | None,
        typer.Option(
            "--catalogue", exists=True, dir_okay=False, help="Catalogue YAML (default: packaged)."
        ),
    ] = None,
) -> None:
    """Check a bundle against the input contracts; print every violation; never modify the input.

    Exit status: 0 clean, 1 violations, 2 usage error. Rows are 1-based data rows (the header is
    line 1 of a CSV, so data row N is line N + 1).
    """
    from rich.console import Console
    from rich.table import Table

    from surveillance.bundle import read_bundle
    from surveillance.catalogue import load_catalogue
    from surveillance.contracts import validate_bundle
    from surveillance.errors import ConfigError, ContractError

    console = Console(width=200, soft_wrap=True)
    try:
        cat = load_catalogue(catalogue)
    except ConfigError as exc:
        console.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    try:
        violations = validate_bundle(read_bundle(data), quarter, cat)
    except ContractError as exc:
        violations = exc.violations
    if not violations:
        console.print(f"{data}: valid for {quarter} (no contract violations)", markup=False)
        raise typer.Exit(0)
    table = Table(title=f"{len(violations)} contract violation(s) in {data} for {quarter}")
    for heading in ("file", "rows", "column", "rule", "message"):
        table.add_column(heading, overflow="fold")
    for v in violations:
        rows = ", ".join(str(r) for r in v.rows)
        table.add_row(v.file, rows, v.column or "", v.rule, v.message)
    console.print(table)
    console.print("rows are 1-based data rows (CSV line = row + 1)", markup=False)
    raise typer.Exit(1)


@app.command()
def synth(
    seed: int = typer.Option(2013, "--seed", help="Random seed: same seed, same bytes."),
    scale: str = typer.Option(
        "demo", "--scale", help="test (tiny), demo (~1 million spells) or national (45 million)."
    ),
    quarter: str = typer.Option(
        "2013Q3", "--quarter", callback=_parse_quarter_option, help="Last quarter to build."
    ),
    quarters: int = typer.Option(
        2, "--quarters", min=1, help="How many quarters (bundles) ending at --quarter."
    ),
    out: str = typer.Option("data/synth", "--out", help="Output directory."),
) -> None:
    """Build the synthetic nation: one input bundle per quarter in OUT/<quarter>/ plus
    OUT/ground_truth.json (failing trusts, planted deteriorations, true risk model)."""
    from surveillance.errors import ConfigError
    from surveillance.synth import synthesise

    if scale not in ("test", "demo", "national"):
        raise typer.BadParameter("scale must be test, demo or national", param_hint="--scale")
    out_dir = Path(out)
    try:
        summary = synthesise(out_dir, seed=seed, scale=scale, quarter=quarter, quarters=quarters)
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
    typer.echo(f"{out_dir / 'ground_truth.json'}: ground truth (seed {seed}, scale {scale})")


@app.command()
def demo(
    out: str = typer.Option("data/synth", "--out", help="Where the synthetic nation lives."),
) -> None:
    """Build the synthetic nation if absent, validate it against the contracts, show what it is."""
    from rich.console import Console
    from rich.table import Table

    from surveillance.errors import ContractError
    from surveillance.synth.demo import ensure_nation, summary_rows, validate_nation

    console = Console()
    out_dir = Path(out)
    built, truth = ensure_nation(out_dir)
    console.print(f"{'Built' if built else 'Found'} the synthetic nation in {out}", markup=False)
    try:
        validate_nation(out_dir, truth["quarters"])
    except ContractError as exc:
        console.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    table = Table(title=f"Synthetic nation (seed {truth['seed']}, scale {truth['scale']}): valid")
    table.add_column("what")
    for q in truth["quarters"]:
        table.add_column(q, justify="right")
    for row in summary_rows(out_dir, truth):
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
