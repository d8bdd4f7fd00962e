"""Run manifest and verification (DESIGN.md section 6: ``manifest.json``).

``manifest.json`` is deterministic: the run id is a hash of the inputs, the catalogue, the model
configurations, the run options and the code version, and nothing in it depends on the wall clock,
so rerunning a quarter with the same inputs rewrites it byte for byte. What does change between
reruns (timings, start and finish times, host, the MLflow run id, which MLflow draws at random)
goes to ``timings.json`` beside it; ``timings.json`` is listed in the manifest as volatile and is
excluded from the output hashes and from byte comparisons. ``surveillance verify`` recomputes the
hashes of every output (and of every input when given the bundle) and reports what changed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_FILE = "manifest.json"
TIMINGS_FILE = "timings.json"
#: files in a run directory that are not hashed (they change on every rerun, by design).
VOLATILE_FILES = (MANIFEST_FILE, TIMINGS_FILE)
MANIFEST_VERSION = 1
_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(payload: Any) -> str:
    """Hex sha256 of canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def code_version(repo_dir: Path | None = None) -> dict[str, Any]:
    """Package version plus the git commit of the checkout (``None`` outside a git tree).

    ``git_dirty`` is true when tracked files differ from the commit, so a run made from
    uncommitted code says so.
    """
    from surveillance import __version__

    root = repo_dir or Path(__file__).resolve().parents[1]
    commit: str | None = None
    dirty: bool | None = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"package": __version__, "git_commit": commit or None, "git_dirty": dirty}


def hash_inputs(paths: Mapping[str, Path], root: Path | None = None) -> dict[str, dict[str, str]]:
    """``{name: {"path": relative path, "sha256": ...}}`` for every input file actually read."""
    out: dict[str, dict[str, str]] = {}
    for name in sorted(paths):
        path = Path(paths[name])
        shown = path
        if root is not None:
            try:
                shown = path.resolve().relative_to(Path(root).resolve())
            except ValueError:
                shown = Path(path.name)
        out[name] = {"path": shown.as_posix(), "sha256": sha256_file(path)}
    return out


def run_id(
    quarter: str,
    inputs: Mapping[str, Mapping[str, str]],
    catalogue_sha256: str,
    model_configs: Mapping[str, str],
    code: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
    previous: Mapping[str, Any] | None = None,
) -> str:
    """Deterministic run id: ``<quarter>-<16 hex>`` over inputs, configuration and code, and
    ``previous``: the published quarters the run reads (last quarter's run id and table hashes,
    the band history's hashes), since movement, persistence and the history depend on them."""
    payload = {
        "quarter": quarter,
        "inputs": {k: v["sha256"] for k, v in inputs.items()},
        "catalogue": catalogue_sha256,
        "model_configs": dict(model_configs),
        "code": {"package": code.get("package"), "git_commit": code.get("git_commit")},
        "options": dict(options or {}),
    }
    if previous:  # absent when nothing is published before: such run ids are unchanged
        payload["previous"] = dict(previous)
    return f"{quarter}-{sha256_json(payload)[:16]}"


def hash_outputs(run_dir: Path | str) -> dict[str, str]:
    """sha256 of every file under ``run_dir`` except the volatile ones, by relative POSIX path."""
    root = Path(run_dir)
    hashes = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel not in VOLATILE_FILES:
            hashes[rel] = sha256_file(path)
    return hashes


def count_rows(path: Path) -> int:
    """Data rows in a CSV we wrote (lines minus the header; quoted newlines never occur)."""
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(lines - 1, 0)


@dataclass
class Manifest:
    """Everything needed to say what a run was made from and whether it is intact."""

    run_id: str
    quarter: str
    inputs: dict[str, dict[str, str]]
    catalogue_sha256: str
    model_configs: dict[str, str]
    code_version: dict[str, Any]
    options: dict[str, Any]
    row_counts: dict[str, int]
    outputs: dict[str, str]
    sources: list[dict[str, Any]] = field(default_factory=list)
    left_out_of_banding: list[dict[str, str]] = field(default_factory=list)
    missing_sources: list[dict[str, str]] = field(default_factory=list)
    quarantined_rows: int = 0
    mlflow: dict[str, Any] = field(default_factory=dict)
    source_notes: list[str] = field(default_factory=list)
    #: published quarters read (:func:`surveillance.pipeline.previous_record`): last quarter's run
    #: id and the sha256 of its bands.csv and flags.csv, and the band history's bands.csv hashes
    previous: dict[str, Any] = field(default_factory=dict)
    #: what the reader accepted but changed or did not know (:class:`surveillance.bundle.InputNote`:
    #: lossless conversions, normalised region names, unknown diagnosis groups); the key is
    #: written only when there is a note, so a bundle needing none gives the same bytes as before
    input_notes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        payload = self._payload()
        if self.input_notes:
            payload["input_notes"] = self.input_notes
        return payload

    def _payload(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "run_id": self.run_id,
            "quarter": self.quarter,
            "code_version": self.code_version,
            "options": self.options,
            "inputs": self.inputs,
            "previous": self.previous,
            "catalogue_sha256": self.catalogue_sha256,
            "model_configs": self.model_configs,
            "sources": self.sources,
            "missing_sources": self.missing_sources,
            "source_notes": self.source_notes,
            "left_out_of_banding": self.left_out_of_banding,
            "quarantined_rows": self.quarantined_rows,
            "row_counts": self.row_counts,
            "outputs": self.outputs,
            "mlflow": self.mlflow,
            "volatile_files": list(VOLATILE_FILES[1:]),
            "notes": (
                "Rerunning with the same inputs, configuration and code rewrites every file "
                "byte for byte except timings.json (timings, wall-clock times, MLflow run id)."
            ),
        }


def write_manifest(manifest: Manifest, run_dir: Path | str) -> Path:
    """Write ``manifest.json`` (sorted keys, trailing newline) into ``run_dir``."""
    from surveillance.store import write_json

    return write_json(manifest.to_dict(), Path(run_dir) / MANIFEST_FILE)


def read_manifest(run_dir: Path | str) -> dict[str, Any]:
    """Load ``<run_dir>/manifest.json``; a clear error if it is absent or not JSON."""
    from surveillance.errors import SurveillanceError

    path = Path(run_dir) / MANIFEST_FILE
    if not path.is_file():
        raise SurveillanceError(f"{path} does not exist: {run_dir} is not a published run")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SurveillanceError(f"{path}: not valid JSON ({exc})") from None


@dataclass(frozen=True)
class Mismatch:
    """One file whose bytes differ from what the manifest recorded."""

    kind: str  # "output" | "input" | "catalogue" | "model_config" | "code"
    name: str
    problem: str  # "changed" | "missing" | "unexpected"
    expected: str | None = None
    actual: str | None = None

    def __str__(self) -> str:
        detail = ""
        if self.expected and self.actual:
            detail = f" (manifest {self.expected[:12]}, on disk {self.actual[:12]})"
        return f"{self.kind} {self.name}: {self.problem}{detail}"


@dataclass
class Verification:
    run_dir: Path
    run_id: str
    checked: int
    mismatches: list[Mismatch]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def verify_run(
    run_dir: Path | str,
    data_dir: Path | str | None = None,
    catalogue_path: Path | None = None,
    model_config_paths: Mapping[str, Path] | None = None,
) -> Verification:
    """Recompute output hashes (and input hashes when ``data_dir`` is given) against the manifest.

    Every file the manifest lists must exist with the same sha256, and no other file may be in the
    run directory (besides the volatile ``manifest.json`` / ``timings.json``). With ``data_dir``,
    every input the manifest lists is re-hashed at the same relative path. ``catalogue_path`` and
    ``model_config_paths``, when given, are compared with the recorded configuration hashes (a
    difference means rerunning today would not reproduce the run).
    """
    root = Path(run_dir)
    manifest = read_manifest(root)
    mismatches: list[Mismatch] = []
    notes: list[str] = []
    recorded: dict[str, str] = manifest.get("outputs", {})
    actual = hash_outputs(root)
    for name in sorted(recorded):
        if name not in actual:
            mismatches.append(Mismatch("output", name, "missing", recorded[name]))
        elif actual[name] != recorded[name]:
            mismatches.append(Mismatch("output", name, "changed", recorded[name], actual[name]))
    for name in sorted(set(actual) - set(recorded)):
        mismatches.append(Mismatch("output", name, "unexpected", None, actual[name]))
    checked = len(recorded)
    if data_dir is not None:
        data = Path(data_dir)
        for _name, entry in sorted(manifest.get("inputs", {}).items()):
            path = data / entry["path"]
            checked += 1
            if not path.is_file():
                mismatches.append(Mismatch("input", entry["path"], "missing", entry["sha256"]))
                continue
            digest = sha256_file(path)
            if digest != entry["sha256"]:
                mismatches.append(
                    Mismatch("input", entry["path"], "changed", entry["sha256"], digest)
                )
    else:
        notes.append("inputs not checked (give --data DIR to re-hash the bundle)")
    if catalogue_path is not None and manifest.get("catalogue_sha256"):
        checked += 1
        digest = sha256_file(catalogue_path)
        if digest != manifest.get("catalogue_sha256"):
            mismatches.append(
                Mismatch(
                    "catalogue",
                    Path(catalogue_path).name,
                    "changed",
                    manifest.get("catalogue_sha256"),
                    digest,
                )
            )
    for name, path in sorted((model_config_paths or {}).items()):
        expected = manifest.get("model_configs", {}).get(name)
        if expected is None:
            continue
        checked += 1
        digest = sha256_file(path)
        if digest != expected:
            mismatches.append(Mismatch("model_config", name, "changed", expected, digest))
    return Verification(root, manifest.get("run_id", ""), checked, mismatches, notes)
