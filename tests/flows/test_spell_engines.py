"""The spell-level steps in memory, streamed by row group, and as a Dask data frame on a cluster of
worker processes publish the same bytes (issue 6: identical outputs beyond one machine)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from surveillance import pipeline
from surveillance.bundle import read_bundle, read_rows
from surveillance.manifest import VOLATILE_FILES

QUARTER = "2013Q3"


def _files(run_dir: Path) -> dict[str, bytes]:
    return {
        p.relative_to(run_dir).as_posix(): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name not in VOLATILE_FILES
    }


def _run(data: Path, out: Path, spells: str, code: dict) -> Path:
    options = pipeline.RunOptions(
        data_dir=data, quarter=QUARTER, out=out, code=code, mlflow=False, spells=spells
    )
    return pipeline.run_quarter(options).run_dir


@pytest.fixture(scope="module")
def in_memory(small_bundles, code_version, tmp_path_factory) -> Path:
    return _run(small_bundles[QUARTER], tmp_path_factory.mktemp("memory"), "memory", code_version)


def test_row_ranges_read_as_the_whole_file(small_bundles) -> None:
    path = small_bundles[QUARTER] / "spells.parquet"
    assert pq.ParquetFile(path).metadata.num_row_groups > 3
    whole = read_bundle(small_bundles[QUARTER]).spells
    for start, stop in [(0, 10), (4_990, 5_010), (len(whole) - 7, len(whole))]:
        part = read_rows(path, "spells", start, stop)
        expected = whole.iloc[start:stop].reset_index(drop=True)
        assert list(part.dtypes.astype(str)) == list(expected.dtypes.astype(str))
        for column in whole.columns:  # categories may differ by chunk: compare the values
            assert part[column].astype(object).equals(expected[column].astype(object)), column


def test_streamed_run_publishes_the_same_bytes(small_bundles, code_version, in_memory, tmp_path):
    streamed = _run(small_bundles[QUARTER], tmp_path, "chunked", code_version)
    assert _files(streamed) == _files(in_memory)


@pytest.mark.slow
def test_dask_dataframe_run_publishes_the_same_bytes(
    small_bundles, code_version, in_memory, tmp_path
):
    from distributed import Client, LocalCluster, get_task_stream

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
    ):
        run = _run(small_bundles[QUARTER], tmp_path, "chunked", code_version)
    assert _files(run) == _files(in_memory)
    # the partitions were read and reduced on both worker processes
    work = [t for t in stream.data if "spell_partial" in str(t["key"])]
    n_parts = len(read_bundle(small_bundles[QUARTER], lazy_spells=True).spells_source.chunks)
    assert len(work) == n_parts > 1
    assert len({t["worker"] for t in work}) == 2


def test_an_empty_spells_file_fails_alike_in_every_mode(small_bundles, tmp_path) -> None:
    import shutil

    from surveillance.errors import SurveillanceError
    from surveillance.mortality.partials import run_chunked
    from surveillance.spell_engine import DaskChunks, StreamChunks

    data = tmp_path / "data"
    shutil.copytree(small_bundles[QUARTER], data)
    table = pq.read_table(data / "spells.parquet")
    pq.write_table(table.slice(0, 0), data / "spells.parquet")
    source = read_bundle(data, lazy_spells=True).spells_source
    assert source.n_rows == 0 and source.chunks == ()
    message = "spells: no rows to fit the risk models on"
    with pytest.raises(SurveillanceError, match=message):
        pipeline.mortality(read_bundle(data), None, QUARTER)
    for chunks in (StreamChunks(source), DaskChunks(source, None)):
        with pytest.raises(SurveillanceError, match=message):
            run_chunked(chunks.apply, chunks.apply_reduce, QUARTER)


def test_auto_streams_large_spells_files_only(small_bundles, monkeypatch) -> None:
    data = small_bundles[QUARTER]
    n = pq.ParquetFile(data / "spells.parquet").metadata.num_rows
    assert pipeline.load(data).spells is not None  # default auto, a small file: in memory
    monkeypatch.setattr(pipeline, "AUTO_CHUNKED_SPELLS", n)
    lazy = pipeline.load(data)
    assert lazy.spells is None and lazy.spells_source.n_rows == n
    assert pipeline.load(data, "memory").spells is not None
    with pytest.raises(ValueError, match="spells must be one of"):
        pipeline.load(data, "fast")
