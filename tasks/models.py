"""Model families: unfitted estimators and their bounded search spaces."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tasks.errors import ConfigError

FAMILIES = ("logistic", "xgboost", "lightgbm")


def _loguniform(lo: float, hi: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _uniform(lo: float, hi: float) -> Callable[[np.random.Generator], float]:
    return lambda rng: float(rng.uniform(lo, hi))


def _integers(lo: int, hi: int) -> Callable[[np.random.Generator], int]:
    return lambda rng: int(rng.integers(lo, hi + 1))


# Bounded random-search spaces. The first trial of every search uses DEFAULTS so a
# budget of 1 still gives a sensible model.
SPACES: dict[str, dict[str, Callable[[np.random.Generator], Any]]] = {
    "logistic": {"C": _loguniform(1e-3, 10.0)},
    "xgboost": {
        "learning_rate": _loguniform(0.02, 0.2),
        "max_depth": _integers(3, 8),
        "min_child_weight": _loguniform(1.0, 20.0),
        "subsample": _uniform(0.6, 1.0),
        "colsample_bytree": _uniform(0.5, 1.0),
        "reg_lambda": _loguniform(0.1, 10.0),
    },
    "lightgbm": {
        "learning_rate": _loguniform(0.02, 0.2),
        "num_leaves": _integers(8, 64),
        "min_child_samples": _integers(10, 100),
        "subsample": _uniform(0.6, 1.0),
        "colsample_bytree": _uniform(0.5, 1.0),
        "reg_lambda": _loguniform(0.1, 10.0),
    },
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic": {"C": 1.0},
    "xgboost": {
        "learning_rate": 0.05,
        "max_depth": 5,
        "min_child_weight": 5.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
    },
    "lightgbm": {
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 30,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
    },
}


def check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ConfigError(f"unknown model family {family!r}; choose from {FAMILIES}")


def sample_params(family: str, n_trials: int, seed: int) -> list[dict[str, Any]]:
    """``n_trials`` hyper-parameter sets: the defaults, then seeded random draws.

    Raises:
        ConfigError: unknown family or ``n_trials`` < 1.
    """
    check_family(family)
    if n_trials < 1:
        raise ConfigError(f"n_trials must be at least 1, got {n_trials}")
    rng = np.random.default_rng(seed)
    trials = [dict(DEFAULTS[family])]
    for _ in range(n_trials - 1):
        trials.append({k: draw(rng) for k, draw in SPACES[family].items()})
    return trials


def gpu_available() -> bool:
    """True when an NVIDIA GPU is visible and XGBoost was built with CUDA."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if not (gpus.is_dir() and any(gpus.iterdir())):
        return False
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    import xgboost

    return bool(xgboost.build_info().get("USE_CUDA"))


def resolve_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``auto`` (``cuda`` where a GPU is present)."""
    if device not in ("cpu", "cuda", "auto"):
        raise ConfigError(f"device must be cpu, cuda or auto, got {device!r}")
    if device == "auto":
        return "cuda" if gpu_available() else "cpu"
    return device


def make_estimator(
    family: str,
    params: dict[str, Any],
    seed: int,
    n_jobs: int = 2,
    device: str = "cpu",
    max_rounds: int = 2000,
    early_stopping_rounds: int = 50,
):
    """An unfitted estimator of ``family`` with ``params``.

    Boosted models get ``max_rounds`` trees with early stopping on the validation
    split (see :func:`tasks.train.fit_trial`).
    """
    check_family(family)
    if family == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=params["C"], max_iter=2000, random_state=seed)
    if family == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=max_rounds,
            early_stopping_rounds=early_stopping_rounds,
            tree_method="hist",
            device=resolve_device(device),
            eval_metric="logloss",
            n_jobs=n_jobs,
            random_state=seed,
            **params,
        )
    from lightgbm import LGBMClassifier

    return LGBMClassifier(
        n_estimators=max_rounds,
        subsample_freq=1,
        # same data, seed and threads -> the same trees (reproducible builds)
        deterministic=True,
        force_row_wise=True,
        n_jobs=n_jobs,
        random_state=seed,
        verbose=-1,
        **params,
    )
