"""Explain: per-feature contributions to a model's raw score, row by row.

For a fitted model artifact (``Pipeline[("preprocess", ...), ("model", est)]``)
:func:`explain_frame` returns, for every input row, one contribution per model
column and a base value such that

    base_value + sum(contributions) == raw score (the log-odds margin)

exactly (up to floating point), for each supported estimator:

* XGBoost (``XGBClassifier``): TreeSHAP from the booster (``pred_contribs=True``),
  over the same trees ``predict_proba`` uses (early stopping included);
* LightGBM (``LGBMClassifier``): TreeSHAP (``pred_contrib=True``);
* logistic regression: exact linear contributions ``coef_j * x_j`` of the
  transformed (scaled, one-hot) columns, with the intercept as base value.
  Tree base values are the model's expected margin; the linear base value is the
  intercept, i.e. the margin of an all-zero transformed row (the mean numeric
  row and no category).

The probability is ``1 / (1 + exp(-raw_score))``. Contributions of the one-hot
columns of a category feature can be summed back to the input feature
(:func:`aggregate_contributions`), which keeps the identity above. This module is
pure: no I/O, no logging set-up; the API's ``/explain`` and the pipeline's explain
stage both call it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tasks.errors import ModelError

BASE_VALUE = "base_value"


@dataclass(frozen=True)
class Explanation:
    """Contributions for a set of rows.

    Attributes:
        contributions: one row per input row (same index), one column per model
            column (``num__age``, ``cat__job_admin.``) or, aggregated, per input
            feature (``age``, ``job``); values are in log-odds.
        base_value: per-row base value (log-odds), same index.
        raw_score: per-row raw score (log-odds margin) of the model.
        probability: per-row positive-class probability, exactly as
            ``model.predict_proba`` gives it (``1 / (1 + exp(-raw_score))`` up to
            the float32 rounding of tree libraries, about 1e-8).
        family: ``xgboost``, ``lightgbm`` or ``logistic``.
    """

    contributions: pd.DataFrame
    base_value: pd.Series
    raw_score: pd.Series
    probability: pd.Series
    family: str

    def check_additivity(self, atol: float = 1e-4) -> float:
        """Largest ``|base + sum(contributions) - raw_score|`` over the rows.

        Tree libraries compute in float32, so the sum matches to about 1e-6, not
        to the last double bit; linear contributions match to about 1e-12.

        Raises:
            ModelError: the gap is above ``atol`` (the explanation is wrong).
        """
        total = self.base_value + self.contributions.sum(axis=1)
        gap = float(np.max(np.abs(total - self.raw_score))) if len(total) else 0.0
        if gap > atol:
            raise ModelError(
                f"contributions do not add up to the raw score (gap {gap:.3g} > "
                f"{atol}); the {self.family} explainer is out of step with the model"
            )
        return gap


def estimator_family(estimator) -> str:
    """``xgboost``, ``lightgbm`` or ``logistic`` from the estimator's class.

    Raises:
        ModelError: the estimator is of another kind.
    """
    module = type(estimator).__module__
    if module.startswith("xgboost"):
        return "xgboost"
    if module.startswith("lightgbm"):
        return "lightgbm"
    if hasattr(estimator, "coef_") and hasattr(estimator, "intercept_"):
        return "logistic"
    raise ModelError(
        f"cannot explain a {type(estimator).__name__}: supported are XGBoost, "
        "LightGBM and linear models with coef_ (logistic regression)"
    )


def split_model(model: Pipeline) -> tuple[Pipeline, object]:
    """(preprocessing, estimator) of a model artifact.

    Raises:
        ModelError: ``model`` is not a two-step pipeline ending in an estimator.
    """
    if not isinstance(model, Pipeline) or len(model.steps) < 2:
        raise ModelError(
            "expected a fitted Pipeline [('preprocess', ...), ('model', estimator)], "
            f"got {type(model).__name__}"
        )
    return model[:-1], model.steps[-1][1]


def _find_column_transformer(step, kind):
    """The last ``kind`` instance in (possibly nested) pipelines, or ``None``."""
    if isinstance(step, kind):
        return step
    found = None
    for _, sub in getattr(step, "steps", []):
        found = _find_column_transformer(sub, kind) or found
    return found


def column_groups(preprocessor: Pipeline) -> dict[str, str]:
    """Map each model column name to the input feature it comes from.

    Reads the fitted :class:`~tasks.features.FeatureEncoder` (the ``columns``
    step), or, in older artifacts, the ``ColumnTransformer``: one-hot columns map
    to their category feature through ``OneHotEncoder.categories_``; other
    transformers are taken as one output column per input column.

    Raises:
        ModelError: the preprocessing has no fitted ``ColumnTransformer`` or a
            transformer's outputs cannot be matched to its inputs.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    from tasks.features import FeatureEncoder

    encoder = _find_column_transformer(preprocessor, FeatureEncoder)
    if encoder is not None and hasattr(encoder, "groups_"):
        return dict(encoder.groups_)
    # artifacts built before FeatureEncoder carry a ColumnTransformer
    ct = _find_column_transformer(preprocessor, ColumnTransformer)
    if ct is None or not hasattr(ct, "transformers_"):
        raise ModelError("the preprocessing has no fitted ColumnTransformer")
    names = [str(n) for n in ct.get_feature_names_out()]
    groups: dict[str, str] = {}
    for tname, trans, cols in ct.transformers_:
        if trans == "drop" or tname not in ct.output_indices_:
            continue
        sl = ct.output_indices_[tname]
        out = names[sl]
        if not out:
            continue
        cols = [str(c) for c in np.atleast_1d(cols)]
        last = trans.steps[-1][1] if isinstance(trans, Pipeline) else trans
        if isinstance(last, OneHotEncoder):
            sizes = [len(c) for c in last.categories_]
            if last.drop_idx_ is not None:
                dropped = [d is not None for d in last.drop_idx_]
                sizes = [s - d for s, d in zip(sizes, dropped, strict=True)]
            owners = [c for c, n in zip(cols, sizes, strict=True) for _ in range(n)]
        else:
            owners = cols
        if len(owners) != len(out):
            raise ModelError(
                f"transformer {tname!r} gives {len(out)} columns for "
                f"{len(cols)} inputs; cannot map them back to input features"
            )
        groups.update(zip(out, owners, strict=True))
    return groups


def raw_contributions(
    estimator, Xt: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contributions of the transformed columns for one estimator.

    Args:
        estimator: fitted XGBoost, LightGBM or linear classifier.
        Xt: the transformed rows (output of the model's preprocessing).

    Returns:
        (contributions ``n x k``, base value ``n``, raw score ``n``), in log-odds.

    Raises:
        ModelError: the estimator is not supported.
    """
    family = estimator_family(estimator)
    Xt = np.asarray(Xt)
    if family == "xgboost":
        from xgboost import DMatrix

        booster = estimator.get_booster()
        # the trees predict_proba uses: up to the early-stopping best iteration
        iteration_range = estimator._get_iteration_range(None)
        dm = DMatrix(Xt, missing=estimator.missing)
        full = booster.predict(dm, pred_contribs=True, iteration_range=iteration_range)
        raw = estimator.predict(Xt, output_margin=True)
        contribs, base = full[:, :-1], full[:, -1]
    elif family == "lightgbm":
        full = estimator.predict(Xt, pred_contrib=True)
        raw = estimator.predict(Xt, raw_score=True)
        contribs, base = full[:, :-1], full[:, -1]
    else:
        coef = np.asarray(estimator.coef_, dtype=float).ravel()
        contribs = Xt.astype(float) * coef
        base = np.full(len(Xt), float(np.ravel(estimator.intercept_)[0]))
        raw = estimator.decision_function(Xt)
    return (
        np.asarray(contribs, dtype=float),
        np.asarray(base, dtype=float),
        np.asarray(raw, dtype=float).ravel(),
    )


def aggregate_contributions(
    contributions: pd.DataFrame, groups: dict[str, str]
) -> pd.DataFrame:
    """Sum model-column contributions into input-feature contributions.

    Args:
        contributions: rows x model columns.
        groups: model column -> input feature (:func:`column_groups`).

    Returns:
        rows x input features, in the order features first appear in ``groups``.

    Raises:
        ModelError: a column has no entry in ``groups``.
    """
    unknown = [c for c in contributions.columns if c not in groups]
    if unknown:
        raise ModelError(f"no input feature known for model column(s) {unknown[:5]}")
    order = list(dict.fromkeys(groups[c] for c in contributions.columns))
    summed = (
        contributions.T.groupby([groups[c] for c in contributions.columns], sort=False)
        .sum()
        .T
    )
    return summed[order]


def explain_frame(
    model: Pipeline, X: pd.DataFrame, aggregate: bool = True
) -> Explanation:
    """Per-row contributions of a model artifact for the rows of ``X``.

    Args:
        model: fitted pipeline (preprocessing + XGBoost/LightGBM/logistic).
        X: rows with the schema's feature columns (raw values, as for
            ``predict_proba``; extra columns are ignored by the preprocessing).
        aggregate: sum one-hot columns back to their input feature.

    Returns:
        An :class:`Explanation` indexed like ``X``; its ``probability`` equals
        ``model.predict_proba(X)[:, 1]``.

    Raises:
        ModelError: the model is not a supported pipeline.
        DataValidationError: ``X`` lacks feature columns (from the preprocessing).
    """
    preprocessor, estimator = split_model(model)
    family = estimator_family(estimator)
    Xt = preprocessor.transform(X)
    contribs, base, raw = raw_contributions(estimator, Xt)
    groups = column_groups(preprocessor)
    columns = list(groups)
    if len(columns) != contribs.shape[1]:
        raise ModelError(
            f"the preprocessing names {len(columns)} columns but the model gives "
            f"{contribs.shape[1]} contributions"
        )
    table = pd.DataFrame(contribs, index=X.index, columns=columns)
    if aggregate:
        table = aggregate_contributions(table, groups)
    return Explanation(
        contributions=table,
        base_value=pd.Series(base, index=X.index, name=BASE_VALUE),
        raw_score=pd.Series(raw, index=X.index, name="raw_score"),
        probability=pd.Series(
            estimator.predict_proba(Xt)[:, 1], index=X.index, name="probability"
        ),
        family=family,
    )


def global_importance(explanation: Explanation) -> pd.Series:
    """Mean absolute contribution per column, largest first (global importance)."""
    return explanation.contributions.abs().mean().sort_values(ascending=False)
