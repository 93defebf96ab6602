"""tasks.explain: contributions + base value == raw score, for every family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from tasks.errors import ModelError
from tasks.explain import (
    aggregate_contributions,
    column_groups,
    explain_frame,
    raw_contributions,
)
from tasks.features import build_preprocessor, feature_names, target_vector
from tests.unit.conftest import make_frame


def _fit(schema, estimator, frame, eval_frame=None) -> Pipeline:
    pre = build_preprocessor(schema).fit(frame)
    X, y = pre.transform(frame), target_vector(frame, schema)
    if eval_frame is not None:
        estimator.fit(
            X,
            y,
            eval_set=[(pre.transform(eval_frame), target_vector(eval_frame, schema))],
            verbose=False,
        )
    else:
        estimator.fit(X, y)
    return Pipeline([("preprocess", pre), ("model", estimator)])


def _estimators():
    from lightgbm import LGBMClassifier
    from xgboost import XGBClassifier

    return {
        "logistic": LogisticRegression(max_iter=500),
        "xgboost": XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1),
        "lightgbm": LGBMClassifier(n_estimators=30, num_leaves=7, verbose=-1, n_jobs=1),
    }


@pytest.mark.parametrize("family", ["logistic", "xgboost", "lightgbm"])
@pytest.mark.parametrize("aggregate", [True, False])
def test_contributions_add_up_to_the_raw_score(schema, frame, family, aggregate):
    model = _fit(schema, _estimators()[family], frame)
    rows = make_frame(50, seed=1)
    ex = explain_frame(model, rows, aggregate=aggregate)
    assert ex.family == family
    assert ex.check_additivity(atol=1e-4) < 1e-4
    # the probability is exactly what predict_proba says, and matches the margin
    np.testing.assert_array_equal(ex.probability, model.predict_proba(rows)[:, 1])
    np.testing.assert_allclose(
        1 / (1 + np.exp(-ex.raw_score)), ex.probability, atol=1e-6
    )
    assert list(ex.contributions.index) == list(rows.index)
    if aggregate:
        assert (
            list(ex.contributions.columns)
            == schema.numeric_features + schema.categorical_features
        )
    else:
        assert list(ex.contributions.columns) == feature_names(model[0])


def test_linear_contributions_are_exact(schema, frame):
    model = _fit(schema, LogisticRegression(max_iter=500), frame)
    rows = make_frame(20, seed=2)
    Xt = model[0].transform(rows)
    contribs, base, raw = raw_contributions(model[-1], Xt)
    np.testing.assert_allclose(contribs, Xt * model[-1].coef_.ravel(), rtol=0, atol=0)
    np.testing.assert_allclose(base + contribs.sum(axis=1), raw, atol=1e-12)


def test_xgboost_uses_the_early_stopping_trees(schema, frame):
    from xgboost import XGBClassifier

    est = XGBClassifier(
        n_estimators=300,
        learning_rate=0.3,
        max_depth=4,
        early_stopping_rounds=5,
        n_jobs=1,
    )
    model = _fit(schema, est, frame, eval_frame=make_frame(200, seed=3))
    assert est.best_iteration < 299  # stopped early: fewer trees than fitted
    rows = make_frame(30, seed=4)
    ex = explain_frame(model, rows)
    ex.check_additivity(atol=1e-4)
    margin = est.predict(model[0].transform(rows), output_margin=True)
    np.testing.assert_allclose(ex.raw_score, margin, atol=1e-5)


def test_aggregation_sums_one_hot_columns(schema, frame):
    model = _fit(schema, LogisticRegression(max_iter=500), frame)
    rows = make_frame(10, seed=5)
    full = explain_frame(model, rows, aggregate=False).contributions
    agg = explain_frame(model, rows, aggregate=True).contributions
    job_cols = [c for c in full.columns if c.startswith("cat__job_")]
    assert len(job_cols) >= 3
    np.testing.assert_allclose(agg["job"], full[job_cols].sum(axis=1))
    groups = column_groups(model[0])
    assert groups["num__age"] == "age" and groups[job_cols[0]] == "job"


def test_unsupported_models_raise_model_error(schema, frame):
    model = _fit(schema, DecisionTreeClassifier(max_depth=2), frame)
    with pytest.raises(ModelError, match="cannot explain a DecisionTreeClassifier"):
        explain_frame(model, frame.head(3))
    with pytest.raises(ModelError, match="expected a fitted Pipeline"):
        explain_frame(LogisticRegression(), frame.head(3))


def test_aggregate_rejects_unknown_columns():
    table = pd.DataFrame({"a": [1.0], "b": [2.0]})
    with pytest.raises(ModelError, match="no input feature known"):
        aggregate_contributions(table, {"a": "x"})
