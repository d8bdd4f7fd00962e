"""surveillance.reports: the static HTML site per run, its figures, and run loading for notebooks."""

from surveillance.reports.run import RunData, read_run
from surveillance.reports.site import build_site, suppress_count

__all__ = ["RunData", "build_site", "read_run", "suppress_count"]
