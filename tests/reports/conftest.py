"""Fixtures for the report tests: a hand-made run directory (DESIGN.md section 6 contract), its
rendered site, and a headless chromium when one is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from cdp import Browser
from run_fixture import fixture_catalogue, write_fixture_run

from surveillance.reports import build_site
from surveillance.reports.pdf import find_chromium

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fixture_run(tmp_path_factory.mktemp("run") / "2013Q3")


@pytest.fixture(scope="session")
def catalogue():
    return fixture_catalogue()


@pytest.fixture(scope="session")
def site(fixture_run: Path, catalogue) -> Path:
    """The fixture run's site directory (``reports/``)."""
    return build_site(fixture_run, catalogue=catalogue).parent


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(
            "headless Chromium is not installed (Debian: apt-get install chromium); "
            "the browser checks of the report site are skipped"
        )
    return path


@pytest.fixture(scope="session")
def browser(chromium: str):
    with Browser(chromium) as b:
        yield b


@pytest.fixture(scope="session")
def demo_run() -> Path:
    """A quarterly run of the synthetic nation (built once into test-artifacts/ when absent)."""
    from run_fixture import demo_run_dir

    run = demo_run_dir(PROJECT_ROOT)
    if not (run / "bands.csv").is_file():
        pytest.skip(f"no finished run in {run}")
    return run


@pytest.fixture(scope="session")
def demo_bundle(demo_run: Path) -> Path | None:
    from run_fixture import demo_bundle_dir

    return demo_bundle_dir(PROJECT_ROOT, demo_run)


@pytest.fixture(scope="session")
def demo_site(
    demo_run: Path, demo_bundle: Path | None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The demo run's site rendered by the current code (the run's own reports/ is left alone),
    with the alerted charts re-run from the bundle when it is known."""
    out = tmp_path_factory.mktemp("demo") / "reports"
    return build_site(demo_run, out, bundle_dir=demo_bundle).parent
