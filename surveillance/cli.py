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


if __name__ == "__main__":  # pragma: no cover
    app()
