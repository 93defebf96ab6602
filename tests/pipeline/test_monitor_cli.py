"""`nbship monitor` end to end on the test-profile build: held-out data is ok, a
shifted copy alerts (exit 10), bad data exits 3; verdict.json and report.html land
in --out-dir."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _monitor(built, current, out_dir, *extra):
    return built.nbship(
        "monitor", str(current), "--out-dir", str(out_dir), *built.cli_set(), *extra
    )


def _verdict(out_dir):
    assert (out_dir / "report.html").is_file()
    return json.loads((out_dir / "verdict.json").read_text())


def test_held_out_split_is_ok(built, tmp_path):
    out = tmp_path / "ok"
    r = _monitor(built, built.products / "split" / "test.parquet", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("monitor: OK"), r.stdout
    v = _verdict(out)
    assert v["status"] == "ok", v["reasons"]
    assert v["rows"]["reference"] == len(
        pd.read_parquet(built.products / "split" / "train.parquet")
    )
    # the test split carries labels: judged against the model's own test AUC
    assert v["performance"]["reference_source"].startswith("test split")
    assert v["performance"]["drop"] == pytest.approx(0, abs=1e-5)
    assert v["inputs"]["model"].startswith(built.model_name)


def test_shifted_copy_alerts_with_exit_10(built, tmp_path):
    test = pd.read_parquet(built.products / "split" / "test.parquet")
    test["balance"] = test["balance"] * 2
    swap = {"cellular": "telephone", "telephone": "cellular"}
    test["contact"] = test["contact"].map(swap).where(test["contact"].notna())
    # a CSV as it would arrive: `;`-separated (env csv_sep), missing as `unknown`
    current = tmp_path / "shifted.csv"
    test.fillna(
        {
            "contact": "unknown",
            "job": "unknown",
            "education": "unknown",
            "poutcome": "unknown",
        }
    ).to_csv(current, sep=";", index=False)
    out = tmp_path / "alert"
    r = _monitor(built, current, out)
    assert r.returncode == 10, r.stdout + r.stderr
    assert r.stdout.startswith("monitor: ALERT")
    v = _verdict(out)
    assert v["status"] == "alert"
    assert v["features"]["contact"]["status"] == "alert"
    assert v["features"]["balance"]["status"] in ("warn", "alert")
    assert v["features"]["age"]["status"] == "ok"


def test_missing_column_exits_3(built, tmp_path):
    test = pd.read_parquet(built.products / "split" / "test.parquet")
    current = tmp_path / "no-balance.parquet"
    test.drop(columns="balance").to_parquet(current)
    r = _monitor(built, current, tmp_path / "bad")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "error:" in r.stderr and "'balance'" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "bad" / "verdict.json").exists()
