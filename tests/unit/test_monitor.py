"""Monitor: drift measures, status rules, verdict schema and report, on in-memory data.

The data imitate the default dataset's shapes: a skewed ``balance`` with negatives,
``pdays`` with most rows at -1, categories with a missing token. Scores come from a
fixed logistic function of the features (a stand-in model: the monitor only sees
the scores), so shifted features shift the scores as a model's would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tasks.errors import ConfigError, DataError, DataValidationError
from tasks.monitor import (
    DEFAULT_THRESHOLDS,
    adjust_p_values,
    auc_standard_error,
    chi_square_test,
    exit_code,
    monitor,
    population_stability_index,
    prediction_drift,
    quantile_edges,
    render_report,
    resolve_thresholds,
)
from tasks.schema import coerce_frame, schema_from_dict

JOBS = ["admin.", "blue-collar", "management", "technician", "services"]
SPEC = {
    "target": "y",
    "positive_label": "yes",
    "missing_values": ["unknown"],
    "columns": {
        "age": {"type": "integer", "min": 18, "max": 100},
        "balance": {"type": "integer", "min": -100000, "max": 1000000},
        "pdays": {"type": "integer", "min": -1, "max": 1000},
        "job": {"type": "category", "nullable": True, "categories": JOBS},
        "contact": {
            "type": "category",
            "nullable": True,
            "categories": ["cellular", "telephone"],
        },
        "y": {"type": "category", "categories": ["no", "yes"]},
    },
}
N = 2000  # current batch size, shifted or not
SEEDS = range(1, 21)


@pytest.fixture(scope="module")
def mschema():
    return schema_from_dict(SPEC)


def _logit(df: pd.DataFrame) -> np.ndarray:
    balance = pd.to_numeric(df["balance"], errors="coerce").fillna(0).to_numpy()
    pdays = pd.to_numeric(df["pdays"], errors="coerce").fillna(-1).to_numpy()
    return (
        -2.2
        + 0.4 * np.tanh(balance / 3000)
        + 0.9 * (pdays > 0)
        + 0.5 * (df["contact"] == "cellular").to_numpy()
        - 0.3 * (df["job"] == "blue-collar").to_numpy()
    )


def score(df: pd.DataFrame) -> np.ndarray:
    """The stand-in model's positive-class probability."""
    return 1 / (1 + np.exp(-_logit(df)))


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """Bank-like rows (raw: ints, strings, ``unknown`` for missing) with a target."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(41, 10, n).clip(18, 95).round().astype(int),
            "balance": np.round(rng.lognormal(6.5, 1.3, n) - 300).astype(int),
            "pdays": np.where(rng.random(n) < 0.8, -1, rng.integers(1, 400, n)),
            "job": rng.choice(JOBS, n, p=[0.3, 0.25, 0.2, 0.15, 0.1]),
            "contact": rng.choice(
                ["cellular", "telephone", "unknown"], n, p=[0.65, 0.07, 0.28]
            ),
        }
    )
    y = rng.random(n) < score(df)
    df["y"] = np.where(y, "yes", "no")
    return df


@pytest.fixture(scope="module")
def reference():
    return make_frame(6000, seed=0)


def run(reference, current, schema, **kw):
    return monitor(reference, current, schema, score(reference), score(current), **kw)


# ---------------------------------------------------------------- statistics
def test_psi_zero_for_identical_and_finite_for_empty_bins():
    assert population_stability_index([10, 20, 30], [1, 2, 3]) == pytest.approx(0)
    value = population_stability_index([10, 0, 30], [10, 50, 30])
    assert np.isfinite(value) and value > 1
    assert np.isnan(population_stability_index([0, 0], [1, 2]))


def test_psi_needs_the_same_bins():
    with pytest.raises(DataValidationError, match="same bins"):
        population_stability_index([1, 2, 3], [1, 2])


def test_quantile_edges_merge_ties():
    values = np.array([-1.0] * 80 + list(range(1, 21)))
    edges = quantile_edges(values, 10)
    assert list(edges[:1]) == [-1.0] and len(edges) == len(set(edges)) < 9
    assert quantile_edges(np.array([np.nan, np.nan]), 10).size == 0


def test_chi_square_single_bin_is_no_difference():
    assert chi_square_test(np.array([5, 0]), np.array([7, 0])) == (0.0, 1.0)


def test_p_value_corrections():
    ps = [0.01, 0.02, None, 0.5]
    bonf = adjust_p_values(ps, "bonferroni")
    assert bonf == pytest.approx([0.03, 0.06, None, 1.0])
    bh = adjust_p_values(ps, "benjamini-hochberg")
    assert bh[2] is None
    assert bh[0] == pytest.approx(0.03) and bh[1] == pytest.approx(0.03)
    with pytest.raises(ConfigError, match="unknown correction"):
        adjust_p_values(ps, "holm")


def test_auc_standard_error_shrinks_with_rows():
    assert auc_standard_error(0.8, 1000, 9000) < auc_standard_error(0.8, 50, 450)


def test_thresholds_validated():
    assert resolve_thresholds(None) == DEFAULT_THRESHOLDS
    assert resolve_thresholds({"psi_alert": "0.3"})["psi_alert"] == 0.3
    with pytest.raises(ConfigError, match="unknown key"):
        resolve_thresholds({"psi_alrt": 0.3})
    with pytest.raises(ConfigError, match="psi_warn"):
        resolve_thresholds({"psi_warn": 0.5})
    with pytest.raises(ConfigError, match="correction"):
        resolve_thresholds({"correction": "holm"})
    with pytest.raises(ConfigError, match="number"):
        resolve_thresholds({"alpha": "often"})


# ---------------------------------------------------------------- shifts flagged
def test_balance_scaled_by_two_is_flagged(reference, mschema):
    current = make_frame(N, seed=101)
    current["balance"] *= 2
    v = run(reference, current, mschema)
    bal = v["features"]["balance"]
    assert bal["status"] in ("warn", "alert")
    assert bal["p_adjusted"] < 0.05 and bal["psi"] >= DEFAULT_THRESHOLDS["psi_warn"]
    assert v["status"] in ("warn", "alert")
    assert any(r.startswith("balance:") for r in v["reasons"])
    others = {n: f["status"] for n, f in v["features"].items() if n != "balance"}
    assert set(others.values()) == {"ok"}, others


def test_swapped_category_frequency_alerts(reference, mschema):
    current = make_frame(N, seed=102)
    # admin. (30 %) and services (10 %) trade places
    current["job"] = current["job"].replace(
        {"admin.": "services", "services": "admin."}
    )
    v = run(reference, current, mschema)
    assert v["features"]["job"]["status"] == "alert"
    assert v["features"]["job"]["test"] == "chi-square"
    assert v["status"] == "alert" and exit_code(v) == 10


def test_unseen_category_and_missing_share(reference, mschema):
    current = make_frame(N, seed=103)
    current.loc[current.index[:200], "job"] = "pilot"  # 10 % never seen in training
    current.loc[current.index[-800:], "age"] = np.nan  # 0 % -> 40 % missing
    v = run(reference, current, mschema)
    job, age = v["features"]["job"], v["features"]["age"]
    assert job["unseen_share"] == pytest.approx(0.1) and job["status"] == "alert"
    assert "(unseen)" in job["bins"]["labels"]
    assert age["missing_share_ref"] == 0 and age["missing_share_cur"] == 0.4
    assert age["status"] == "alert"


def test_performance_drop_alerts_and_intact_labels_do_not(reference, mschema):
    current = make_frame(N, seed=104)
    ok = run(reference, current, mschema)
    assert ok["performance"]["status"] == "ok"
    assert ok["performance"]["reference_source"] == "reference data"
    rng = np.random.default_rng(0)
    current["y"] = np.where(
        rng.random(N) < 0.5, current["y"], rng.choice(["yes", "no"], N, p=[0.15, 0.85])
    )
    v = run(
        reference,
        current,
        mschema,
        reference_auc=ok["performance"]["current"],
        reference_auc_source="test",
    )
    perf = v["performance"]
    assert perf["drop"] > DEFAULT_THRESHOLDS["auc_drop_alert"]
    assert perf["status"] == "alert" and v["status"] == "alert"


def test_prediction_drift_on_shifted_scores():
    rng = np.random.default_rng(0)
    ref = rng.beta(2, 8, 5000)
    assert prediction_drift(ref, rng.beta(2, 8, 2000))["status"] == "ok"
    shifted = prediction_drift(ref, rng.beta(4, 6, 2000), decision_threshold=0.3)
    assert shifted["status"] == "alert"
    assert shifted["positive_rate_cur"] > shifted["positive_rate_ref"]


# ---------------------------------------------------------------- no false alarms
@pytest.mark.parametrize("n", [N, 300])
def test_unshifted_samples_false_alarm_rate(reference, mschema, capsys, n):
    """Samples from the reference's distribution (the shifted tests' size, and a
    small labelled batch): how often the monitor raises anything, over 20 seeds."""
    statuses, feature_flags = [], 0
    for seed in SEEDS:
        v = run(reference, make_frame(n, seed=1000 + seed), mschema)
        statuses.append(v["status"])
        feature_flags += sum(f["status"] != "ok" for f in v["features"].values())
    runs = len(statuses)
    alert_rate = statuses.count("alert") / runs
    flag_rate = sum(s != "ok" for s in statuses) / runs
    with capsys.disabled():
        print(
            f"\nmonitor false-alarm rate over {runs} unshifted samples of {n} rows: "
            f"alert {alert_rate:.0%}, warn-or-alert {flag_rate:.0%}, "
            f"feature flags {feature_flags}/{runs * len(mschema.features)}"
        )
    assert alert_rate <= 0.05
    assert flag_rate <= 0.10


def test_small_batch_alert_lowered_to_warn(reference, mschema):
    current = make_frame(50, seed=105)
    current["job"] = "services"
    v = run(reference, current, mschema)
    assert v["features"]["job"]["status"] == "alert"
    assert v["status"] == "warn" and exit_code(v) == 0
    assert any("min_rows" in r for r in v["reasons"])


# ---------------------------------------------------------------- contract
FEATURE_KEYS = {
    "status": str,
    "psi": float,
    "test": str,
    "statistic": float,
    "p_value": float,
    "p_adjusted": float,
    "missing_share_ref": float,
    "missing_share_cur": float,
    "unseen_share": float,
    "bins": dict,
}


def test_verdict_schema_is_stable(reference, mschema):
    current = make_frame(N, seed=106)
    v = run(
        reference,
        current,
        mschema,
        decision_threshold=0.2,
        inputs={"current": "x.parquet"},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert set(v) == {
        "status",
        "reasons",
        "thresholds",
        "correction",
        "features",
        "prediction",
        "performance",
        "data_quality",
        "rows",
        "inputs",
        "created_at",
    }
    assert v["status"] in ("ok", "warn", "alert")
    assert v["correction"] == "benjamini-hochberg"
    assert v["thresholds"] == DEFAULT_THRESHOLDS
    assert v["rows"] == {"reference": 6000, "current": N}
    assert v["created_at"] == "2026-01-01T00:00:00+00:00"
    assert list(v["features"]) == mschema.feature_names
    for name, f in v["features"].items():
        assert list(f) == list(FEATURE_KEYS), name
        for key, typ in FEATURE_KEYS.items():
            assert isinstance(f[key], typ), (name, key, f[key])
        assert f["test"] == ("ks" if mschema[name].is_numeric else "chi-square")
        assert set(f["bins"]) == {"labels", "reference", "current"}
        assert len(f["bins"]["labels"]) == len(f["bins"]["current"])
    assert set(v["prediction"]) == {
        "psi",
        "test",
        "statistic",
        "p_value",
        "mean_ref",
        "mean_cur",
        "decision_threshold",
        "positive_rate_ref",
        "positive_rate_cur",
        "histogram",
        "status",
        "reasons",
    }
    assert set(v["performance"]) == {
        "metric",
        "reference",
        "reference_source",
        "current",
        "drop",
        "standard_error",
        "labeled_rows",
        "positive_rate",
        "status",
        "reasons",
    }
    assert set(v["data_quality"]) == {"invalid_rows", "invalid_share", "by_column"}
    # plain JSON, and a round trip changes nothing
    assert json.loads(json.dumps(v, allow_nan=False)) == v


def test_without_scores_or_target(reference, mschema):
    current = make_frame(N, seed=107).drop(columns="y")
    v = monitor(reference, current, mschema)
    assert v["prediction"] is None and v["performance"] is None
    v = run(reference, current, mschema)
    assert v["prediction"] is not None and v["performance"] is None


def test_raw_and_coerced_inputs_agree(reference, mschema):
    current = make_frame(N, seed=108)
    current["balance"] = current["balance"].astype(object)
    current.loc[current.index[:5], "balance"] = "n/a"  # breaks the type rule
    raw = run(reference, current, mschema)
    cur_c = coerce_frame(current, mschema)
    ref_c = coerce_frame(reference, mschema)
    canon = monitor(ref_c, cur_c, mschema, score(ref_c), score(cur_c))
    for name in mschema.feature_names:
        for key in ("psi", "p_value", "missing_share_cur", "unseen_share"):
            assert raw["features"][name][key] == pytest.approx(
                canon["features"][name][key]
            ), (name, key)
    assert raw["data_quality"]["invalid_rows"] == 5
    assert raw["data_quality"]["by_column"] == {"balance": 5}


# ---------------------------------------------------------------- bad input
def test_empty_current_is_a_data_error(reference, mschema):
    with pytest.raises(DataError, match="current data has no rows"):
        monitor(reference, reference.iloc[:0], mschema)


def test_missing_column_is_named(reference, mschema):
    current = make_frame(100, seed=109).drop(columns=["balance", "job"])
    with pytest.raises(DataValidationError, match=r"\['balance', 'job'\]") as e:
        monitor(reference, current, mschema)
    assert [i["column"] for i in e.value.issues] == ["balance", "job"]


def test_scores_must_match_rows(reference, mschema):
    current = make_frame(100, seed=110)
    with pytest.raises(DataValidationError, match="99 values for 100 rows"):
        monitor(reference, current, mschema, score(reference), score(current)[:99])
    with pytest.raises(DataValidationError, match="both"):
        monitor(reference, current, mschema, score(reference), None)


# ---------------------------------------------------------------- report
def test_report_is_self_contained(reference, mschema):
    current = make_frame(N, seed=111)
    current["balance"] *= 2
    v = run(reference, current, mschema, decision_threshold=0.2)
    page = render_report(v)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") >= 3
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "WARN" in page or "ALERT" in page
    assert "benjamini-hochberg" in page
