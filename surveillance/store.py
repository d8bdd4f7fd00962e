"""Reading bundles and publishing runs: atomic, locked, byte-stable (DESIGN.md sections 6 and 7).

A run is written into a staging directory beside its destination (``<out>/.<quarter>.staging-*``)
and published with one ``rename`` of the directory, so a failed or killed run never leaves a
partial ``<out>/<quarter>/``. Republishing an existing quarter needs ``force`` and swaps the two
directories atomically (Linux ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames). A lock file
``<out>/.<quarter>.lock`` held with ``fcntl.flock`` stops two runs of one quarter publishing over
each other. Every published run is registered in ``<out>/catalogue.duckdb`` (a ``runs`` table and
views over each run's flags, bands, alerts and mortality CSVs) so analysts can query all quarters
in SQL.

CSV files are written with a fixed float format, ``\\n`` line endings and a stable row order so a
rerun is byte-identical, and every text cell that a spreadsheet would read as a formula
(``=``, ``+``, ``-``, ``@`` followed by non-numeric text) gets a leading apostrophe
(OWASP "CSV injection").
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from surveillance.errors import SurveillanceError
from surveillance.periods import Quarter

if TYPE_CHECKING:  # pragma: no cover
    from surveillance.bundle import Bundle

#: float format for every CSV we write: 10 significant digits, stable across platforms.
FLOAT_FORMAT = "%.10g"
#: the run outputs the DuckDB catalogue exposes as views (one view per file, all quarters).
CATALOGUE_TABLES = ("flags", "bands", "alerts", "mortality")
CATALOGUE_FILE = "catalogue.duckdb"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMERIC_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?%?$")
_RENAME_EXCHANGE = 2  # linux/fs.h


class StoreError(SurveillanceError):
    """The output directory cannot be written, or a path is unsafe."""


class RunLockedError(StoreError):
    """Another run of the same quarter holds the lock."""


class AlreadyPublishedError(StoreError):
    """The quarter is already published and ``force`` was not given."""


# --------------------------------------------------------------------------------------------
# reading


def read_bundle(data_dir: Path | str, lazy_spells: bool = False) -> Bundle:
    """Read an input bundle (CSV or Parquet); delegates to :func:`surveillance.bundle.read_bundle`."""
    from surveillance.bundle import read_bundle as _read_bundle

    path = Path(data_dir)
    if not path.is_dir():
        raise StoreError(f"{path}: bundle directory does not exist")
    return _read_bundle(path, lazy_spells=lazy_spells)


# --------------------------------------------------------------------------------------------
# paths


_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MONTHLY_SUBDIR = "monthly"


def run_directory(out: Path | str, quarter: str | Quarter) -> Path:
    """The published directory ``<out>/<quarter>``, checked to lie inside ``out``.

    ``quarter`` must parse as a :class:`Quarter` (so ``../x`` and absolute paths are rejected
    before any path is built), and the resolved directory must be a direct child of the resolved
    ``out`` (so a symlinked ``<out>/<quarter>`` pointing elsewhere is rejected too). A month
    ``YYYY-MM`` (monthly mortality runs) maps to ``<out>/monthly/<YYYY-MM>`` under the same rules.
    """
    root = Path(out).resolve()
    text = str(quarter).strip()
    if not isinstance(quarter, Quarter) and _MONTH_RE.match(text):
        parent = (root / MONTHLY_SUBDIR).resolve()
        target = (parent / text).resolve()
        if parent.parent != root or target.parent != parent:
            raise StoreError(f"run directory {target} resolves outside the output directory {root}")
        return target
    try:
        q = quarter if isinstance(quarter, Quarter) else Quarter.parse(text)
    except ValueError as exc:
        raise StoreError(f"--quarter: {exc}") from None
    target = (root / str(q)).resolve()
    if target.parent != root:
        raise StoreError(f"run directory {target} resolves outside the output directory {root}")
    return target


def _os_error(exc: OSError, path: Path, action: str) -> StoreError:
    """Turn an OSError into a StoreError that says what to do."""
    reasons = {
        errno.EACCES: "permission denied (is the output directory read-only for this user?)",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "no space left on the device (free space or choose another --out)",
        errno.EDQUOT: "disk quota exceeded",
    }
    reason = reasons.get(exc.errno, exc.strerror or str(exc))
    return StoreError(f"cannot {action} {path}: {reason}")


def check_apart(data_dir: Path | str, out: Path | str) -> None:
    """Refuse an output directory that is, contains or lies inside the input bundle.

    Publishing replaces ``<out>/<quarter>`` (``--force``) and writes stores beside it, so an
    ``--out`` holding the bundle (``--data out/2013Q3 --out out``) could delete the input, and
    one inside the bundle would write into it; refused whatever the flags, before anything is
    created. Paths are compared resolved (symlinks followed).
    """
    data = Path(data_dir).resolve()
    root = Path(out).resolve()
    if data == root or root in data.parents:
        raise StoreError(
            f"--data {data} is inside --out {root}: publishing there could replace or delete the "
            "input bundle; choose an --out outside the bundle (e.g. --out out)"
        )
    if data in root.parents:
        raise StoreError(
            f"--out {root} is inside --data {data}: the run would write into its own input "
            "bundle; choose an --out outside the bundle (e.g. --out out)"
        )


def ensure_output_dir(out: Path | str) -> Path:
    """Create ``out`` if needed and check it is a writable directory; return it resolved."""
    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, root, "create the output directory") from None
    root = root.resolve()
    if not root.is_dir():
        raise StoreError(f"--out {root} is not a directory")
    fd, probe = None, None
    try:
        # removed in ``finally``, whatever fails (a full disk fails the write, not the create)
        fd, probe = tempfile.mkstemp(dir=root, prefix=".write-test-")
        os.write(fd, b"x")
        os.fsync(fd)
    except OSError as exc:
        raise _os_error(exc, root, "write to the output directory") from None
    finally:
        if fd is not None:
            os.close(fd)
        if probe is not None:
            with contextlib.suppress(OSError):
                os.unlink(probe)
    return root


def check_output_dir(out: Path | str) -> None:
    """Check that ``out`` is or can be made a writable directory, creating nothing.

    The nearest existing ancestor must be a directory this user may write to, on a file system
    that is not read-only and has space left. The run checks the same again, by writing, once
    it starts (:func:`ensure_output_dir`).
    """
    root = Path(out).absolute()
    existing = root
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            raise StoreError(f"--out {root}: {existing} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        what = "is not a directory" if existing == root else f"has a file in its path ({existing})"
        raise StoreError(f"--out {root} {what}")
    stats = os.statvfs(existing)
    if stats.f_flag & os.ST_RDONLY:
        raise StoreError(
            f"cannot write to the output directory {root}: the file system is read-only"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StoreError(
            f"cannot write to the output directory {root}: permission denied for {existing} "
            "(read-only for this user, or immutable)"
        )
    if stats.f_bavail == 0:
        raise StoreError(
            f"cannot write to the output directory {root}: no space left on the device "
            "(free space or choose another --out)"
        )


# --------------------------------------------------------------------------------------------
# locking


@contextlib.contextmanager
def quarter_lock(out: Path | str, quarter: str | Quarter) -> Iterator[Path]:
    """Hold ``<out>/.<quarter>.lock`` (``fcntl.flock``, non-blocking) for the duration.

    Raises :class:`RunLockedError` at once if another process holds it. The lock is released when
    the holder exits, however it exits (the kernel drops ``flock`` locks with the descriptor), so
    a killed run never leaves a stale lock behind.
    """
    run_dir = run_directory(out, quarter)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = run_dir.parent / f".{run_dir.name}.lock"
    fd = _acquire(lock_path, run_dir.name)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock_path
    finally:
        # removed while still held, so a run leaves no lock file behind; a process that opened
        # it meanwhile finds it unlinked after locking and takes a fresh one (see _acquire)
        with contextlib.suppress(OSError):
            os.unlink(lock_path)
        os.close(fd)


def _acquire(lock_path: Path, quarter: str) -> int:
    """Open and ``flock`` the lock file; the descriptor, once it locks the file at the path."""
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _os_error(exc, lock_path, "create the lock file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_lock_holder(fd)
            os.close(fd)
            raise RunLockedError(
                f"another run of {quarter} is in progress{holder} (lock {lock_path}); "
                "wait for it to finish"
            ) from None
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed it after we opened it: lock the new one


def check_unlocked(out: Path | str, quarter: str | Quarter) -> None:
    """Raise :class:`RunLockedError` if another run holds the quarter's lock (creates nothing)."""
    run_dir = run_directory(out, quarter)
    lock_path = run_dir.parent / f".{run_dir.name}.lock"
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return  # no lock file: no run in progress
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"another run of {run_dir.name} is in progress{_read_lock_holder(fd)} "
                f"(lock {lock_path}); wait for it to finish"
            ) from None
    finally:
        os.close(fd)


def _read_lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


# --------------------------------------------------------------------------------------------
# staging and publishing


def staging_directory(out: Path | str, quarter: str | Quarter) -> Path:
    """A fresh empty directory ``<out>/.<quarter>.staging-XXXX`` on the same file system."""
    run_dir = run_directory(out, quarter)
    try:
        path = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.staging-"))
    except OSError as exc:
        raise _os_error(exc, run_dir.parent, "create a staging directory in") from None
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; a published run is readable like any dir
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False if unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    at_fdcwd = -100
    rc = libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish(staging: Path, out: Path | str, quarter: str | Quarter, force: bool = False) -> Path:
    """Move a finished staging directory to ``<out>/<quarter>`` atomically; return the target.

    Without ``force`` an existing quarter is left alone and :class:`AlreadyPublishedError` is
    raised. With ``force`` the old and new directories are exchanged in one step and the old one
    is then deleted. Call it while holding :func:`quarter_lock`.
    """
    target = run_directory(out, quarter)
    staging = Path(staging).resolve()
    if staging.parent != target.parent:
        raise StoreError(f"staging directory {staging} is not beside {target}")
    try:
        if target.exists() or target.is_symlink():
            if not force:
                raise AlreadyPublishedError(
                    f"{target} already exists: pass --force to replace it with this run"
                )
            if not _exchange(staging, target):
                old = target.parent / f".{target.name}.old-{os.getpid()}"
                os.rename(target, old)
                os.rename(staging, target)
                staging = old
            shutil.rmtree(staging, ignore_errors=True)
        else:
            os.rename(staging, target)
    except OSError as exc:
        raise _os_error(exc, target, "publish") from None
    _fsync_dir(target.parent)
    return target


def discard(staging: Path) -> None:
    """Delete a staging directory after a failed run (never touches the published quarter)."""
    shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def staged_run(
    out: Path | str, quarter: str | Quarter, force: bool = False, hold_lock: bool = True
) -> Iterator[Path]:
    """Lock the quarter, give the caller a staging directory, publish it if the block succeeds.

    If the block raises (or the process is killed) nothing is published; the staging directory is
    removed (a killed run's ``.staging-*`` directory is hidden and is removed by :func:`clean_stale`).
    A quarter already published without ``force`` is refused before any work is done.
    """
    root = ensure_output_dir(out)
    target = run_directory(root, quarter)
    target.parent.mkdir(exist_ok=True)
    lock = quarter_lock(root, quarter) if hold_lock else contextlib.nullcontext()
    with lock:
        if target.exists() and not force:
            raise AlreadyPublishedError(
                f"{target} already exists: pass --force to replace it with this run"
            )
        staging = staging_directory(root, quarter)
        try:
            yield staging
        except OSError as exc:  # disk full, read-only, ... while writing: say so, not a traceback
            discard(staging)
            where = Path(exc.filename) if exc.filename else staging
            raise _os_error(exc, where, "write") from None
        except BaseException:
            discard(staging)
            raise
        try:
            publish(staging, root, quarter, force=force)
        except BaseException:
            discard(staging)
            raise
    if target.parent == root:
        try:
            register_run(root, target)
        except StoreError as exc:
            # the quarter is published; the catalogue is rebuilt from disk at the next publish
            warnings.warn(
                f"{target} published, but the run catalogue was not updated: {exc}", stacklevel=2
            )


def clean_stale(out: Path | str, quarter: str | Quarter) -> list[Path]:
    """Remove leftover staging directories of ``quarter`` (call while holding its lock)."""
    target = run_directory(out, quarter)
    removed = []
    for path in sorted(target.parent.glob(f".{target.name}.staging-*")) + sorted(
        target.parent.glob(f".{target.name}.old-*")
    ):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


# --------------------------------------------------------------------------------------------
# writing files


def neutralise_formula(value: Any) -> Any:
    """Prefix ``'`` to a string a spreadsheet would evaluate as a formula; leave numbers alone.

    A cell is neutralised when it starts with ``= + - @`` (or tab / carriage return) and the rest
    is not a number, so ``-1.5`` and ``+3e-4`` stay as they are but ``=HYPERLINK(...)`` and
    ``@SUM(A1)`` become ``'=HYPERLINK(...)`` and ``'@SUM(A1)``.

    References
    ----------
    OWASP, "CSV Injection", https://owasp.org/www-community/attacks/CSV_Injection
    """
    if not isinstance(value, str) or len(value) < 2 or not value.startswith(_FORMULA_START):
        return value
    if _NUMERIC_RE.match(value.strip()):
        return value
    return "'" + value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell passed through :func:`neutralise_formula`."""
    out = frame.copy()
    for column in out.columns:
        series = out[column]
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            out[column] = series.map(neutralise_formula, na_action="ignore")
    out.columns = [neutralise_formula(str(c)) for c in out.columns]
    return out


def write_csv(
    frame: pd.DataFrame,
    path: Path | str,
    sort_by: Sequence[str] | None = None,
    float_format: str = FLOAT_FORMAT,
) -> Path:
    """Write ``frame`` as a byte-stable CSV: sorted rows, fixed float format, formulas neutralised.

    ``sort_by`` names the key columns (stable mergesort, missing values last); the index is never
    written. Booleans are written ``True``/``False``, missing values as empty cells.
    """
    path = Path(path)
    data = frame.reset_index(drop=True)
    if sort_by:
        missing = [c for c in sort_by if c not in data.columns]
        if missing:
            raise StoreError(f"{path.name}: cannot sort by missing column(s) {missing}")
        data = data.sort_values(list(sort_by), kind="mergesort", na_position="last")
    data = neutralise_frame(data)
    try:
        data.to_csv(path, index=False, float_format=float_format, na_rep="", lineterminator="\n")
    except OSError as exc:
        raise _os_error(exc, path, "write") from None
    return path


def write_json(payload: Any, path: Path | str) -> Path:
    """Write JSON with sorted keys and a trailing newline (byte-stable)."""
    path = Path(path)
    text = json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _os_error(exc, path, "write") from None
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --------------------------------------------------------------------------------------------
# the DuckDB catalogue of published runs


@dataclass(frozen=True)
class PublishedRun:
    quarter: str
    run_id: str
    path: Path


def published_runs(out: Path | str) -> list[PublishedRun]:
    """Every ``<out>/<quarter>/manifest.json`` on disk, oldest quarter first."""
    root = Path(out).resolve()
    runs = []
    for child in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            Quarter.parse(child.name)
        except ValueError:
            continue
        manifest = child / "manifest.json"
        if child.is_dir() and manifest.is_file():
            run_id = json.loads(manifest.read_text(encoding="utf-8")).get("run_id", "")
            runs.append(PublishedRun(child.name, run_id, child))
    return runs


@contextlib.contextmanager
def _catalogue_lock(root: Path) -> Iterator[None]:
    fd = os.open(root / ".catalogue.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # short critical section: wait rather than fail
        yield
    finally:
        os.close(fd)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def register_run(out: Path | str, run_dir: Path | str | None = None) -> Path:
    """Record published runs in ``<out>/catalogue.duckdb`` and rebuild its views.

    The catalogue is rebuilt from what is on disk (every ``<out>/<quarter>/manifest.json``), so it
    can never disagree with the published directories; ``run_dir`` is accepted for clarity only.
    Tables: ``runs(quarter, run_id, path, code_version, git_commit, mlflow_run_id, n_trusts,
    n_flags, n_alerts, published_at)``; views ``flags``, ``bands``, ``alerts``, ``mortality``
    with a leading ``quarter`` column, the union over all quarters.
    """
    import duckdb

    root = Path(out).resolve()
    db_path = root / CATALOGUE_FILE
    with _catalogue_lock(root):
        try:
            con = duckdb.connect(str(db_path))
        except duckdb.IOException as exc:
            raise StoreError(f"cannot open the run catalogue {db_path}: {exc}") from None
        try:
            _rebuild_catalogue(con, root)
        finally:
            con.close()
    return db_path


def _rebuild_catalogue(con: Any, root: Path) -> None:
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS runs (
            quarter VARCHAR PRIMARY KEY, run_id VARCHAR, path VARCHAR, code_version VARCHAR,
            git_commit VARCHAR, mlflow_run_id VARCHAR, n_trusts BIGINT, n_flags BIGINT,
            n_alerts BIGINT, published_at TIMESTAMP
        )
        """
    )
    runs = published_runs(root)
    known = dict(con.execute("SELECT quarter, run_id FROM runs").fetchall())
    on_disk = {r.quarter for r in runs}
    for quarter in sorted(set(known) - on_disk):
        con.execute("DELETE FROM runs WHERE quarter = ?", [quarter])
    for run in runs:
        if known.get(run.quarter) == run.run_id:
            continue
        manifest = json.loads((run.path / "manifest.json").read_text(encoding="utf-8"))
        timings_path = run.path / "timings.json"
        timings = (
            json.loads(timings_path.read_text(encoding="utf-8")) if timings_path.is_file() else {}
        )
        counts = manifest.get("row_counts", {})
        code = manifest.get("code_version", {})
        con.execute("DELETE FROM runs WHERE quarter = ?", [run.quarter])
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run.quarter,
                run.run_id,
                str(run.path),
                code.get("package"),
                code.get("git_commit"),
                timings.get("mlflow_run_id"),
                counts.get("bands.csv"),
                counts.get("flags.csv"),
                counts.get("alerts.csv"),
                timings.get("finished_at"),
            ],
        )
    for table in CATALOGUE_TABLES:
        parts = [
            f"SELECT {_sql_string(r.quarter)} AS quarter, * FROM read_csv("
            f"{_sql_string(str(r.path / f'{table}.csv'))}, header=true, sample_size=-1, "
            "types={'trust_code': 'VARCHAR'})"
            for r in runs
            if (r.path / f"{table}.csv").is_file() and _has_rows(r.path / f"{table}.csv")
        ]
        con.execute(f"DROP VIEW IF EXISTS {table}")
        if parts:
            con.execute(f"CREATE VIEW {table} AS " + " UNION ALL BY NAME ".join(parts))
        else:
            con.execute(f"CREATE VIEW {table} AS SELECT NULL::VARCHAR AS quarter WHERE false")


def _has_rows(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.readline()
        return bool(handle.readline().strip())


def query_catalogue(out: Path | str, sql: str) -> pd.DataFrame:
    """Run read-only SQL against ``<out>/catalogue.duckdb`` and return a data frame."""
    import duckdb

    db_path = Path(out).resolve() / CATALOGUE_FILE
    if not db_path.is_file():
        raise StoreError(f"{db_path} does not exist: no run has been published to {out}")
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()
