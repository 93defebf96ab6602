import numpy as np
import pandas as pd
import pytest

from tasks import evaluate as ev
from tasks.errors import ConfigError, DataValidationError
from tasks.features import fit_features, target_vector
from tasks.models import FAMILIES, resolve_device, sample_params
from tasks.register import gate
from tasks.split import split_data
from tasks.train import assemble_model, tune_model
from tests.unit.conftest import make_frame


@pytest.fixture(scope="module")
def data():
    from tasks.schema import schema_from_dict
    from tests.unit.conftest import SPEC

    schema = schema_from_dict(SPEC)
    train, val, test = split_data(make_frame(1500, seed=1), "y", seed=0)
    pre = fit_features(train, schema)
    return schema, pre, train, val, test


def test_sample_params_start_with_defaults_and_are_seeded():
    a = sample_params("xgboost", 4, seed=1)
    assert len(a) == 4 and a == sample_params("xgboost", 4, seed=1)
    assert a[0]["max_depth"] == 5
    assert a[1] != sample_params("xgboost", 4, seed=2)[1]
    with pytest.raises(ConfigError, match="unknown model family 'svm'"):
        sample_params("svm", 2, 0)
    with pytest.raises(ConfigError, match="at least 1"):
        sample_params("logistic", 0, 0)


def test_device_resolution():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="cpu, cuda or auto"):
        resolve_device("tpu")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_learns_the_signal(data, family):
    schema, pre, train, val, test = data
    Xt, Xv = pre.transform(train), pre.transform(val)
    best, trials = tune_model(
        family,
        Xt,
        target_vector(train, schema),
        Xv,
        target_vector(val, schema),
        n_trials=2,
        seed=0,
        n_jobs=1,
    )
    assert len(trials) == 2 and trials["best"].sum() == 1
    assert (
        trials.loc[trials["best"], "val_roc_auc"].item() == trials["val_roc_auc"].max()
    )
    model = assemble_model(pre, best)
    proba = model.predict_proba(test)[:, 1]
    # age and contact drive y: any family must beat chance clearly
    assert ev.compute_metrics(target_vector(test, schema), proba)["roc_auc"] > 0.7


def test_tuning_is_reproducible(data):
    schema, pre, train, val, _ = data
    args = (
        pre.transform(train),
        target_vector(train, schema),
        pre.transform(val),
        target_vector(val, schema),
    )
    _, a = tune_model("lightgbm", *args, n_trials=2, seed=5, n_jobs=1)
    _, b = tune_model("lightgbm", *args, n_trials=2, seed=5, n_jobs=1)
    cols = ["val_roc_auc", "val_log_loss", "rounds"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_metrics_on_known_values():
    y = np.array([0, 0, 1, 1])
    m = ev.compute_metrics(y, np.array([0.1, 0.4, 0.35, 0.8]))
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx(np.mean([0.01, 0.16, 0.4225, 0.04]))
    with pytest.raises(DataValidationError, match="both classes"):
        ev.compute_metrics(np.array([1, 1]), np.array([0.2, 0.3]))


def test_cost_threshold_minimises_cost():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.6, 0.5, 0.9])
    # missing a positive costs 10, a wasted call 1: call everyone from 0.5 up
    best = ev.cost_threshold(y, p, cost_fp=1, cost_fn=10)
    assert best["threshold"] == 0.5 and best["cost"] == 1
    # wasted calls expensive: only call the most certain
    assert ev.cost_threshold(y, p, cost_fp=10, cost_fn=1)["threshold"] == 0.9


def test_slices_and_selection(frame):
    y = (frame["y"] == "yes").to_numpy(int)
    s = ev.slice_metrics(frame, y, np.linspace(0, 1, len(frame)), ["contact"])
    assert set(s["value"]) == {"cell", "phone"} and s["rows"].sum() == len(frame)
    results = {"a": {"val": {"roc_auc": 0.7}}, "b": {"val": {"roc_auc": 0.8}}}
    assert ev.select_champion(results) == "b"
    with pytest.raises(DataValidationError, match="slice column 'nope'"):
        ev.slice_metrics(frame, y, y, ["nope"])


def test_promotion_gate():
    assert gate(0.80, None, 0.001) == (True, "no current champion")
    assert gate(0.802, 0.80, 0.001)[0] is True
    ok, reason = gate(0.8005, 0.80, 0.001)
    assert ok is False and "< champion 0.8000 + margin 0.001" in reason
