import re

import pandas as pd
import pytest

from tasks.errors import ConfigError, DataError
from tasks.ingest import ingest_table
from tasks.io import read_table, sha256_file, table_format, write_json, write_parquet


def test_reads_csv_and_parquet(tmp_path, frame):
    frame.to_csv(tmp_path / "a.csv", sep=";", index=False)
    write_parquet(frame, tmp_path / "a.parquet")
    assert read_table(tmp_path / "a.csv", csv_sep=";").shape == frame.shape
    pd.testing.assert_frame_equal(read_table(tmp_path / "a.parquet"), frame)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty (0 bytes)"),
        (b"a,b,y\n", "has a header but no rows"),
        (b"\x00\x01\x02garbage", "could not be read as parquet"),
    ],
)
def test_unreadable_files_say_why(tmp_path, content, message):
    name = "bad.parquet" if b"garbage" in content else "bad.csv"
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=re.escape(message)):
        read_table(tmp_path / name)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unknown table format"):
        table_format("data.xlsx")


def test_wrong_separator_is_explained(tmp_path, frame):
    frame.to_csv(tmp_path / "semi.csv", sep=";", index=False)
    with pytest.raises(DataError, match="separated by ';'"):
        read_table(tmp_path / "semi.csv", csv_sep=",")


def test_ingest_hashes_the_source_and_samples_reproducibly(tmp_path, frame):
    path = tmp_path / "a.csv"
    frame.to_csv(path, index=False)
    df, meta = ingest_table(path, sample=50, seed=1)
    again, _ = ingest_table(path, sample=50, seed=1)
    assert len(df) == 50 and meta["rows"] == len(frame)
    assert meta["sha256"] == sha256_file(path)
    pd.testing.assert_frame_equal(df, again)
    with pytest.raises(ConfigError, match="positive row count"):
        ingest_table(path, sample=-3)


def test_atomic_writes_leave_no_temporary_files(tmp_path, frame):
    write_json({"b": 1, "a": [1, 2]}, tmp_path / "x.json")
    write_parquet(frame, tmp_path / "x.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "x.parquet"]
    assert (tmp_path / "x.json").read_text().startswith('{\n  "a"')


def test_parquet_is_byte_reproducible(tmp_path, frame):
    write_parquet(frame, tmp_path / "1.parquet")
    write_parquet(frame, tmp_path / "2.parquet")
    assert sha256_file(tmp_path / "1.parquet") == sha256_file(tmp_path / "2.parquet")
