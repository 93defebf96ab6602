"""tasks.score.score_file: chunked streaming == one pass, rejects with reasons,
fail-fast, unreadable inputs, and flat memory on a file larger than a chunk."""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from tasks.errors import DataError, DataValidationError
from tasks.features import build_preprocessor, target_vector
from tasks.score import (
    default_rejects_path,
    score_file,
    score_frame,
)
from tests.unit.conftest import make_frame

THRESHOLD = 0.5


@pytest.fixture
def model(schema, frame) -> Pipeline:
    pre = build_preprocessor(schema).fit(frame)
    est = LogisticRegression(max_iter=500).fit(
        pre.transform(frame), target_vector(frame, schema)
    )
    return Pipeline([("preprocess", pre), ("model", est)])


def _score(model, schema, path, out, **kw):
    return score_file(model, path, out, schema, THRESHOLD, "7", **kw)


def test_chunked_equals_one_pass_and_in_memory(tmp_path, model, schema):
    data = make_frame(1000, seed=11)
    src = tmp_path / "in.parquet"
    data.to_parquet(src)
    one = _score(
        model,
        schema,
        src,
        tmp_path / "one.parquet",
        chunk_size=10_000,
        rejects=tmp_path / "r1.parquet",
    )
    many = _score(
        model,
        schema,
        src,
        tmp_path / "many.parquet",
        chunk_size=97,
        rejects=tmp_path / "r2.parquet",
    )
    assert (one.chunks, many.chunks) == (1, math.ceil(1000 / 97))
    a = pd.read_parquet(tmp_path / "one.parquet")
    b = pd.read_parquet(tmp_path / "many.parquet")
    pd.testing.assert_frame_equal(a, b)
    expected = score_frame(model, data, schema, THRESHOLD, "7")
    pd.testing.assert_frame_equal(a, expected, check_dtype=False)
    assert list(a.columns) == ["row_id", "score", "label", "model_version"]
    assert a["row_id"].tolist() == list(range(1000))


def test_csv_gz_gives_the_same_scores_as_parquet(tmp_path, model, schema):
    data = make_frame(300, seed=12)
    data.to_parquet(tmp_path / "in.parquet")
    with gzip.open(tmp_path / "in.csv.gz", "wt") as f:
        data.to_csv(f, sep=";", index=False)
    _score(
        model,
        schema,
        tmp_path / "in.parquet",
        tmp_path / "p.parquet",
        rejects=tmp_path / "rp.parquet",
    )
    _score(
        model,
        schema,
        tmp_path / "in.csv.gz",
        tmp_path / "c.parquet",
        chunk_size=64,
        csv_sep=";",
        rejects=tmp_path / "rc.parquet",
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "p.parquet"), pd.read_parquet(tmp_path / "c.parquet")
    )


def _with_bad_rows(n: int = 500) -> pd.DataFrame:
    data = make_frame(n, seed=13).astype({"age": object, "contact": object})
    data.loc[3, "age"] = 5  # below min
    data.loc[150, "job"] = "pilot"  # not a declared category
    data.loc[151, "contact"] = None  # missing, not nullable
    data.loc[420, "age"] = "abc"  # not a number, in a later chunk
    return data


def test_invalid_rows_go_to_the_rejects_file_with_reasons(tmp_path, model, schema):
    src = tmp_path / "in.csv"
    _with_bad_rows().to_csv(src, index=False)
    out = tmp_path / "scores.parquet"
    result = _score(
        model, schema, src, out, chunk_size=100, rejects=tmp_path / "rejects.csv"
    )
    assert (result.rows, result.scored, result.rejected) == (500, 496, 4)
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    reasons = dict(zip(rejects["row_id"], rejects["reason"], strict=True))
    assert set(reasons) == {3, 150, 151, 420}
    assert "age: value below min 18" in reasons[3]
    assert "job: value not among" in reasons[150]
    assert "contact: missing value" in reasons[151]
    assert "age: value is not a number" in reasons[420]
    assert rejects.loc[rejects.row_id == 150, "job"].item() == "pilot"
    scores = pd.read_parquet(out)
    assert len(scores) == 496 and not set(scores["row_id"]) & set(reasons)
    assert scores["row_id"].is_monotonic_increasing
    assert sum(result.reasons.values()) == 4


def test_fail_fast_names_the_row_and_leaves_no_output(tmp_path, model, schema):
    src = tmp_path / "in.parquet"
    _with_bad_rows().astype({"age": str}).to_parquet(src)
    out = tmp_path / "scores.parquet"
    with pytest.raises(
        DataValidationError,
        match=r"row 3 is invalid: age: value "
        r"below min 18",
    ):
        _score(
            model,
            schema,
            src,
            out,
            chunk_size=100,
            rejects=tmp_path / "r.parquet",
            fail_fast=True,
        )
    assert not out.exists() and not (tmp_path / "r.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # no rejects file requested: invalid rows are an error too
    with pytest.raises(DataValidationError):
        _score(model, schema, src, out, rejects=None)


@pytest.mark.parametrize(
    "content, name, match",
    [
        (None, "absent.parquet", "does not exist"),
        (b"", "empty.csv", "is empty"),
        (
            b"age,job\n30,tech\n",
            "few.csv",
            r"lacks the feature column\(s\) "
            r"\['balance', 'contact'\]",
        ),
        (
            b"age;balance;job;contact\n30;1;tech;cell\n",
            "semi.csv",
            "looks separated by ';'",
        ),
        (b"not parquet", "bad.parquet", "could not be read as parquet"),
        (b"a,b\n", "data.xlsx", "unknown table format"),
    ],
)
def test_unreadable_inputs_raise_data_error(
    tmp_path, model, schema, content, name, match
):
    src = tmp_path / name
    if content is not None:
        src.write_bytes(content)
    with pytest.raises(DataError, match=match):
        _score(
            model, schema, src, tmp_path / "o.parquet", rejects=tmp_path / "r.parquet"
        )


def test_default_rejects_path():
    assert default_rejects_path("out/scores.parquet") == Path(
        "out/scores.rejects.parquet"
    )


_MEASURE = """
import sys, joblib
from pathlib import Path
from tasks.score import score_file
from tests.unit.conftest import SPEC
from tasks.schema import schema_from_dict

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

model = joblib.load(sys.argv[1])
schema = schema_from_dict(SPEC)
Path("/proc/self/clear_refs").write_text("5")
before = hwm()
result = score_file(model, sys.argv[2], sys.argv[3], schema, 0.5, "1",
                    chunk_size=int(sys.argv[4]), rejects=sys.argv[3] + ".rej")
print(result.chunks, result.scored, hwm() - before)
"""


def _peak_growth(tmp_path, model_path, src, chunk_size) -> tuple[int, int, int]:
    """(chunks, rows scored, peak RSS growth in bytes) of one run in a fresh
    process, so memory freed earlier in this test process cannot hide growth."""
    import subprocess
    import sys

    out = tmp_path / f"out-{chunk_size}.parquet"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEASURE,
            str(model_path),
            str(src),
            str(out),
            str(chunk_size),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    chunks, scored, grown = (int(v) for v in proc.stdout.split()[-3:])
    return chunks, scored, grown


def test_memory_stays_flat_on_a_file_larger_than_a_chunk(tmp_path, model, schema):
    """Scoring 300,000 rows in 5,000-row chunks peaks far lower than scoring them
    in one pass. Peak RSS (VmHWM, reset through /proc/self/clear_refs) is measured
    in a fresh process per run; Linux only."""
    import joblib

    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("cannot reset the peak RSS here (/proc/self/clear_refs)")
    n = 300_000
    src = tmp_path / "big.parquet"
    make_frame(n, seed=14).to_parquet(src, row_group_size=50_000)
    model_path = tmp_path / "model.joblib"
    joblib.dump(model, model_path)
    chunks, scored, chunked = _peak_growth(tmp_path, model_path, src, 5000)
    assert (chunks, scored) == (n // 5000, n)
    _, _, one_pass = _peak_growth(tmp_path, model_path, src, n)
    assert chunked < one_pass / 3, (
        f"chunked peak grew {chunked / 1e6:.1f} MB, one pass {one_pass / 1e6:.1f} MB"
    )
    assert len(pd.read_parquet(tmp_path / "out-5000.parquet")) == n


def test_score_frame_keeps_given_row_ids(model, schema):
    data = make_frame(5, seed=15)
    out = score_frame(
        model, data, schema, THRESHOLD, "3", row_ids=pd.Series([10, 11, 12, 13, 14])
    )
    assert out["row_id"].tolist() == [10, 11, 12, 13, 14]
    assert set(out["label"]) <= {"no", "yes"} and (out["model_version"] == "3").all()
    assert np.isfinite(out["score"]).all()
    assert os.fspath(default_rejects_path("s.parquet")) == "s.rejects.parquet"
