"""PDF copies of the printable pages (the QSG reports) through headless Chromium.

The pages carry their own ``@media print`` CSS, so a browser's "print to PDF" is the PDF. We use
the Debian ``chromium`` the browser tests already need instead of a Python PDF library: WeasyPrint
installs from PyPI as pure Python but needs the Pango system library at run time, and the pure
Python alternatives do not render this CSS. Without Chromium the export raises a clear error.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from surveillance.errors import SurveillanceError

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-pdf-header-footer",
)


def find_chromium() -> str | None:
    """Path of a Chromium executable on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def export_pdf(
    html: Path | str, pdf: Path | str, chromium: str | None = None, timeout: float = 120
) -> Path:
    """Print one self-contained HTML page to ``pdf`` with headless Chromium; return ``pdf``."""
    html, pdf = Path(html).resolve(), Path(pdf).resolve()
    if not html.is_file():
        raise SurveillanceError(f"{html}: page to print does not exist")
    exe = chromium or find_chromium()
    if exe is None:
        raise SurveillanceError(
            "PDF export needs headless Chromium (Debian: apt-get install chromium); none found on PATH"
        )
    pdf.parent.mkdir(parents=True, exist_ok=True)
    tmp_pdf = pdf.with_name(pdf.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix="chromium-pdf-") as profile:
        proc = subprocess.run(
            [
                exe,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--print-to-pdf={tmp_pdf}",
                html.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0 or not tmp_pdf.is_file() or tmp_pdf.stat().st_size == 0:
        tmp_pdf.unlink(missing_ok=True)
        raise SurveillanceError(
            f"{html}: Chromium could not print it to PDF (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
        )
    tmp_pdf.replace(pdf)
    return pdf


def export_qsg_pdfs(site: Path | str, chromium: str | None = None) -> list[Path]:
    """A PDF beside every QSG report of a rendered site (``qsg/<region>.pdf``)."""
    site = Path(site)
    pages = sorted((site / "qsg").glob("*.html"))
    if not pages:
        raise SurveillanceError(f"{site / 'qsg'}: no QSG reports to export")
    return [export_pdf(page, page.with_suffix(".pdf"), chromium) for page in pages]
