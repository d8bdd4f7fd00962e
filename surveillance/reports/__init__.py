"""surveillance.reports: the static HTML site per run, its figures, and run loading for notebooks.

Public API: :func:`build_site` (the site), :func:`read_run` / :class:`RunData` (a run directory),
:func:`suppress_count` (small-number suppression), :func:`alert_paths` and
:func:`alert_paths_from_bundle` (monthly paths of alerted RA-CUSUM charts),
:func:`export_qsg_pdfs` (PDF copies of the QSG reports through headless Chromium).
"""

from surveillance.reports.paths import alert_paths, alert_paths_from_bundle
from surveillance.reports.pdf import export_pdf, export_qsg_pdfs
from surveillance.reports.run import RunData, read_run
from surveillance.reports.site import build_site, suppress_count

__all__ = [
    "RunData",
    "alert_paths",
    "alert_paths_from_bundle",
    "build_site",
    "export_pdf",
    "export_qsg_pdfs",
    "read_run",
    "suppress_count",
]
