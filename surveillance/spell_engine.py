"""Where the spell-level steps run: the spells in memory, or chunk by chunk (in this process, or
as a Dask data frame on a cluster).

The spell-level steps are the contract check of ``spells``, the activity counts behind the
complaints indicators, and the mortality stage (risk-model fit, expected deaths, ratios, charts).
Each is written as a function of one chunk of rows plus a reduce (:mod:`surveillance.mortality.
partials`, :func:`validate_spells`, :func:`spells_activity`), so it runs unchanged on

* :class:`FrameChunks`: the spells already read into memory, as one chunk (the default run);
* :class:`StreamChunks`: ``spells.parquet`` read one row group at a time in this process (the
  driver never holds the whole file: the low-memory single-machine run);
* :class:`DaskChunks`: ``spells.parquet`` as a Dask data frame with one partition per row group,
  each read and reduced on a worker from shared storage; only the per-chunk sums, the violations
  and the RA-CUSUM window arrays come back. Nothing spell-level travels in the task graph.

Every reduce is exact (whole-number counts; expected deaths summed by
:mod:`surveillance.stats.exact`; the RA-CUSUM window concatenated in file order), so the
published tables are byte-identical whichever engine runs them and however the file is split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from surveillance.bundle import Bundle, SpellSource, read_rows
from surveillance.errors import Violation, split_row_total, with_row_total
from surveillance.periods import Quarter

#: a chunk function: ``func(chunk, start_row, *args)``
ChunkFunc = Callable[..., Any]


@dataclass
class FrameChunks:
    """The spells in memory, processed as one chunk."""

    frame: pd.DataFrame
    file: str = "spells.parquet"
    name: str = "memory"

    def apply(self, func: ChunkFunc, *args: Any, columns: list[str] | None = None) -> list:
        return [func(self.frame, 0, *args)]

    def apply_reduce(
        self,
        func: ChunkFunc,
        combine: Callable[[list], Any],
        *args: Any,
        columns: list[str] | None = None,
    ) -> Any:
        return func(self.frame, 0, *args)  # one chunk: nothing to combine


@dataclass
class StreamChunks:
    """``spells.parquet`` read one row group at a time in this process, ``threads`` row groups at
    once (Parquet decoding and the numpy kernels release the GIL). Results come back in file
    order, so the outcome does not depend on ``threads``."""

    source: SpellSource
    threads: int = 2
    name: str = "stream"

    @property
    def file(self) -> str:
        return self.source.file

    def _results(self, func: ChunkFunc, args: tuple, columns: list[str] | None) -> Iterator:
        def one(bounds: tuple[int, int]) -> Any:
            a, b = bounds
            return func(read_rows(self.source.path, "spells", a, b, columns), a, *args)

        chunks = list(self.source.chunks)
        if not chunks:
            return
        # the first chunk here: lazy imports and compiled kernels are ready before any thread
        yield one(chunks[0])
        if self.threads <= 1:
            yield from map(one, chunks[1:])
            return
        with ThreadPoolExecutor(self.threads) as pool:
            yield from pool.map(one, chunks[1:])

    def apply(self, func: ChunkFunc, *args: Any, columns: list[str] | None = None) -> list:
        return list(self._results(func, args, columns))

    def apply_reduce(
        self,
        func: ChunkFunc,
        combine: Callable[[list], Any],
        *args: Any,
        columns: list[str] | None = None,
    ) -> Any:
        """Folded as the chunks arrive: a few chunks and the running total in memory."""
        total = None
        for part in self._results(func, args, columns):
            total = part if total is None else combine([total, part])
        return total if total is not None else combine([])


class DaskChunks:
    """``spells.parquet`` as a Dask data frame (one partition per row group) on ``client``'s
    cluster (``None``: the current Dask scheduler); workers read their partitions from the path,
    which must be on storage they share."""

    name = "dask"

    def __init__(self, source: SpellSource, client: Any):

        self.source = source
        self.client = client
        self.starts = [a for a, _ in source.chunks]
        # a file without rows has no partitions: every apply then sees no chunks
        self.frame = self.dataframe() if source.chunks else None

    def dataframe(self, columns: list[str] | None = None) -> Any:
        """The spells (``columns`` only, when given) as a Dask data frame, one partition per row
        group, indexed by row number."""
        import dask.dataframe as dd

        source = self.source
        meta = read_rows(source.path, "spells", 0, min(1, source.n_rows), columns).iloc[:0]
        return dd.from_map(
            _read_partition,
            [(str(source.path), a, b, columns) for a, b in source.chunks],
            meta=meta,
            divisions=[*self.starts, source.n_rows - 1] if self.starts else None,
            enforce_metadata=False,
        )

    @property
    def file(self) -> str:
        return self.source.file

    def apply(self, func: ChunkFunc, *args: Any, columns: list[str] | None = None) -> list:
        tasks = self._tasks(func, args, columns)
        if self.client is None:
            import dask

            return list(dask.compute(*tasks))
        return list(self.client.gather(self.client.compute(tasks)))

    def apply_reduce(
        self,
        func: ChunkFunc,
        combine: Callable[[list], Any],
        *args: Any,
        columns: list[str] | None = None,
    ) -> Any:
        """Reduced on the workers by a tree of ``combine`` over neighbouring partitions (file
        order kept), so only the total comes back."""
        import dask

        level = self._tasks(func, args, columns)
        if not level:
            return combine([])
        while len(level) > 1:
            level = [
                dask.delayed(combine, pure=True)(level[i : i + 2]) for i in range(0, len(level), 2)
            ]
        if self.client is None:
            return level[0].compute()
        return self.client.compute(level[0]).result()

    def _tasks(self, func: ChunkFunc, args: tuple, columns: list[str] | None) -> list:
        import dask

        if self.frame is None:
            return []
        parts = (self.frame if columns is None else self.dataframe(columns)).to_delayed()
        # the model, the catalogue...: sent to the workers once, not once per partition
        shared = [
            a
            if self.client is None or a is None or isinstance(a, str | int | float | bool)
            else self.client.scatter(a)
            for a in args
        ]
        return [
            dask.delayed(func, pure=True)(part, start, *shared)
            for part, start in zip(parts, self.starts, strict=True)
        ]


def _read_partition(spec: tuple[str, int, int, list[str] | None]) -> pd.DataFrame:
    path, start, stop, columns = spec
    frame = read_rows(path, "spells", start, stop, columns)
    frame.index = pd.RangeIndex(start, stop)
    return frame


Chunks = FrameChunks | StreamChunks | DaskChunks


@contextmanager
def chunks_for(bundle: Bundle, client: Any | None = None) -> Iterator[Chunks | None]:
    """The engine for ``bundle``'s spells: in memory when read, else Dask on ``client`` (or on the
    cluster of the Prefect task running this, under the Dask task runner), else streamed here.
    ``None`` when the bundle has no spells."""
    if bundle.spells is not None:
        yield FrameChunks(bundle.spells, bundle.file_name("spells"))
        return
    if bundle.spells_source is None:
        yield None
        return
    if client is not None:
        yield DaskChunks(bundle.spells_source, client)
        return
    with _task_dask_client() as task_client:
        if task_client is not None:
            yield DaskChunks(bundle.spells_source, task_client)
        else:
            yield StreamChunks(bundle.spells_source)


@contextmanager
def _task_dask_client() -> Iterator[Any | None]:
    """A client of the cluster this runs on when it is a task on a Dask worker (a Prefect task
    under the Dask task runner); else the current ``distributed`` client if the caller made one;
    else ``None``.

    On a worker, ``distributed.worker_client`` secedes the task's thread from the worker's pool
    while it waits for the partitions: with one thread per worker, a task that simply waited
    (``prefect_dask.get_dask_client`` does not secede) would hold the thread its partitions need,
    and two such tasks (derive and mortality run together) deadlock a 2-worker cluster.
    """
    try:
        from distributed import default_client, get_worker, worker_client
    except ImportError:  # pragma: no cover - dask is a dependency
        yield None
        return
    try:
        get_worker()
    except ValueError:  # not on a Dask worker: a client the caller made current, if any
        try:
            client = default_client()
        except ValueError:
            client = None
        yield client
        return
    with worker_client() as client:
        yield client


# ------------------------------------------------------------------ the contract check


@dataclass
class ChunkCheck:
    """One chunk's violations (rows of the whole file) and its spell-id hashes."""

    violations: list[Violation]
    hashes: np.ndarray  # uint64 per row (0 where the id is missing)
    present: np.ndarray  # bool per row: has an id


def check_chunk(
    chunk: pd.DataFrame,
    start: int,
    file: str,
    quarter: str,
    catalogue: pd.DataFrame,
    known: pd.Index | None,
) -> ChunkCheck:
    """The spells contract on one chunk (every rule but the file-wide ``unique_key``)."""
    from surveillance.contracts import validate_table

    found = validate_table("spells", file, chunk, Quarter.parse(quarter), catalogue, known)
    violations = [v.shifted(start) for v in found if v.rule != "unique_key"]
    ids = chunk["spell_id"] if "spell_id" in chunk.columns else pd.Series([], dtype=object)
    hashes, present = string_hashes(ids)  # as contracts._duplicated_values: nulls skipped
    return ChunkCheck(violations, hashes, present)


_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def string_hashes(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hash of each string (FNV-1a over its UTF-8 bytes, its length mixed in, then the
    splitmix64 finaliser), read straight from the Arrow buffers, and whether it is not null.

    Equal strings hash equal; unequal ones collide with probability about 2**-64 per pair, and
    :func:`validate_spells` compares the strings of any rows whose hashes collide.
    """
    import pyarrow as pa

    arr = pa.array(series, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.large_string())  # ids stored as numbers (the not_text rule says so)
    arr = arr.cast(pa.large_binary())
    n = len(arr)
    present = arr.is_valid().to_numpy(zero_copy_only=False).astype(bool)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return h, present
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0)
    start, length = offsets[:-1], np.diff(offsets)
    last = max(len(data) - 1, 0)
    with np.errstate(over="ignore"):
        for j in range(int(length.max(initial=0))):
            byte = data[np.minimum(start + j, last)].astype(np.uint64)
            h = np.where(j < length, (h ^ byte) * _FNV_PRIME, h)
        h ^= length.astype(np.uint64)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    h[~present] = 0
    return h, present


def _ids_at(chunk: pd.DataFrame, start: int, rows: np.ndarray) -> pd.Series:
    """The spell ids of the file rows ``rows`` (0-based) that fall in this chunk."""
    local = rows[(rows >= start) & (rows < start + len(chunk))] - start
    ids = chunk["spell_id"].iloc[local].astype(str).to_numpy()
    return pd.Series(ids, index=local + start)


def merge_violations(parts: list[list[Violation]], max_rows: int | None) -> list[Violation]:
    """Per-chunk violations of one file merged into the single-pass result: one per rule and
    column, rows in file order (the first ``max_rows``), the total in the message."""
    merged: dict[tuple, list] = {}
    for part in parts:
        for v in part:
            base, total = split_row_total(v.message)
            total = len(v.rows) if total is None else total
            key = (v.rule, v.column, base)
            if key not in merged:
                merged[key] = [v, [], 0]
            merged[key][1].extend(v.rows)
            merged[key][2] += total
    out = []
    for (rule, column, base), (first, rows, total) in merged.items():
        rows = tuple(sorted(rows)[:max_rows] if max_rows else sorted(rows))
        out.append(
            Violation(first.file, rule, with_row_total(base, total, len(rows)), column, rows)
        )
    return out


def validate_spells(
    chunks: Chunks, quarter: str, catalogue: pd.DataFrame, known: pd.Index | None
) -> list[Violation]:
    """Every violation of the spells contract, as :func:`surveillance.contracts.validate_table`
    reports it on the whole file: per-chunk checks, then ``unique_key`` across the file (64-bit
    hashes of the ids first, the rows sharing a hash compared by id)."""
    from surveillance.contracts import MAX_ROWS_PER_RULE, _unique_rule

    checks = chunks.apply(check_chunk, chunks.file, quarter, catalogue, known)
    hashes = np.concatenate([c.hashes for c in checks]) if checks else np.zeros(0, np.uint64)
    present = np.concatenate([c.present for c in checks]) if checks else np.zeros(0, bool)
    ordered = np.sort(hashes[present])
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    del ordered
    candidates = np.flatnonzero(present & np.isin(hashes, repeated)) if repeated.size else []
    duplicated: list[int] = []
    if len(candidates):
        ids = pd.concat(chunks.apply(_ids_at, candidates, columns=["spell_id"]))
        dup = ids[ids.duplicated(keep=False)]
        duplicated = sorted(int(r) + 1 for r in dup.index)
    violations = merge_violations([c.violations for c in checks], MAX_ROWS_PER_RULE)
    if duplicated:
        rule = _unique_rule("spells")
        listed = tuple(duplicated[:MAX_ROWS_PER_RULE])
        message = with_row_total(rule.message, len(duplicated), len(listed))
        violations.append(Violation(chunks.file, rule.rule, message, rule.column, listed))
    return _in_rule_order(violations, quarter, catalogue, known)


def _in_rule_order(
    violations: list[Violation], quarter: str, catalogue: pd.DataFrame, known: pd.Index | None
) -> list[Violation]:
    """Sorted as validate_table lists them: structural first, then by the rule's position."""
    from surveillance.contracts import _rules_for

    rules = _rules_for("spells", Quarter.parse(quarter), catalogue, known)
    position = {(r.rule, r.column): i for i, r in reversed(list(enumerate(rules)))}

    def key(v: Violation) -> tuple[int, int]:
        if v.rule in ("missing_column", "extra_column"):
            return (0, 0)  # stable: in the order every chunk reports them
        return (1, position.get((v.rule, v.column), len(rules)))

    return sorted(violations, key=key)


# ------------------------------------------------------------------ activity


def _activity_chunk(chunk: pd.DataFrame, start: int, quarter: str) -> pd.Series:
    from surveillance.assess import spells_activity as chunk_activity

    return chunk_activity(chunk, quarter)


def spells_activity(chunks: Chunks, quarter: str) -> pd.Series:
    """Spells per trust discharged in the 12 months to the quarter end
    (:func:`surveillance.assess.spells_activity`), summed over chunks (whole numbers: exact)."""
    parts = [
        p
        for p in chunks.apply(_activity_chunk, quarter, columns=["trust_code", "discharge_date"])
        if len(p)
    ]
    if not parts:
        return pd.Series(dtype=float)
    if len(parts) == 1:
        return parts[0]
    total = pd.concat(parts).groupby(level=0, sort=True).sum()
    total.index.name = parts[0].index.name
    return total.rename(parts[0].name).astype(float)
