"""Train: a bounded hyper-parameter search per model family, scored on validation."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from tasks.models import make_estimator, sample_params

log = logging.getLogger(__name__)


def fit_trial(
    family: str,
    params: dict[str, Any],
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    seed: int,
    n_jobs: int = 2,
    device: str = "cpu",
):
    """Fit one estimator; boosted families stop early on the validation split."""
    est = make_estimator(family, params, seed=seed, n_jobs=n_jobs, device=device)
    if family == "xgboost":
        est.fit(X_train, y_train, eval_set=[(X_val, y_val)], verbose=False)
    elif family == "lightgbm":
        import lightgbm

        est.fit(
            X_train,
            y_train,
            eval_X=X_val,
            eval_y=y_val,
            callbacks=[lightgbm.early_stopping(50, verbose=False)],
        )
    else:
        est.fit(X_train, y_train)
    return est


def _rounds(est) -> int | None:
    for attr in ("best_iteration_", "best_iteration"):
        value = getattr(est, attr, None)
        if value is not None:
            return int(value) + (1 if attr == "best_iteration" else 0)
    return None


def tune_model(
    family: str,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    n_trials: int = 10,
    seed: int = 42,
    n_jobs: int = 2,
    device: str = "cpu",
) -> tuple[Any, pd.DataFrame]:
    """Random search over ``family``'s space; keep the best validation ROC AUC.

    Args:
        family: ``logistic``, ``xgboost`` or ``lightgbm``.
        X_train, y_train: transformed training features and 0/1 target.
        X_val, y_val: transformed validation features and 0/1 target.
        n_trials: search budget (number of fitted models).
        seed: seeds both the parameter draws and the estimators.
        n_jobs: threads per model.
        device: ``cpu``, ``cuda`` or ``auto`` (XGBoost only).

    Returns:
        The best fitted estimator and a table with one row per trial
        (``trial``, ``val_roc_auc``, ``val_log_loss``, ``rounds``, ``seconds``,
        ``params`` as columns ``param_<name>``, ``best``).

    Raises:
        ConfigError: unknown family or a budget below 1.
    """
    rows, best, best_auc = [], None, -np.inf
    for i, params in enumerate(sample_params(family, n_trials, seed)):
        start = time.perf_counter()
        est = fit_trial(
            family, params, X_train, y_train, X_val, y_val, seed, n_jobs, device
        )
        proba = est.predict_proba(X_val)[:, 1]
        auc = float(roc_auc_score(y_val, proba))
        row = {
            "trial": i,
            "val_roc_auc": auc,
            "val_log_loss": float(log_loss(y_val, proba, labels=[0, 1])),
            "rounds": _rounds(est),
            "seconds": round(time.perf_counter() - start, 3),
            **{f"param_{k}": v for k, v in params.items()},
        }
        rows.append(row)
        log.info("%s trial %d/%d: val ROC AUC %.4f", family, i + 1, n_trials, auc)
        if auc > best_auc:
            best, best_auc = est, auc
    trials = pd.DataFrame(rows)
    trials["best"] = trials["val_roc_auc"] == best_auc
    # several trials may tie; flag only the first, which is the one kept
    first = trials.index[trials["best"]][0]
    trials["best"] = trials.index == first
    return best, trials


def assemble_model(preprocessor: Pipeline, estimator) -> Pipeline:
    """One artifact: the fitted preprocessing followed by the fitted estimator."""
    return Pipeline(
        [("preprocess", preprocessor), ("model", estimator)],
    )
