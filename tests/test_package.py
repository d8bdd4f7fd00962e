from typer.testing import CliRunner

import surveillance
from surveillance.cli import app


def test_cli_version_matches_package():
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip() == surveillance.__version__
