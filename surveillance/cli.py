"""Command-line interface (Typer): `surveillance --help`."""

from __future__ import annotations

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


if __name__ == "__main__":  # pragma: no cover
    app()
