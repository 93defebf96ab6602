"""Evaluate: held-out metrics, cost-based threshold, calibration, slices and plots."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from tasks.errors import DataValidationError

METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")


def compute_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), log loss and Brier score.

    Raises:
        DataValidationError: lengths differ or ``y_true`` has a single class.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    if len(y_true) != len(proba):
        raise DataValidationError(
            f"y_true has {len(y_true)} rows but proba has {len(proba)}"
        )
    if len(np.unique(y_true)) != 2:
        raise DataValidationError("metrics need both classes in y_true")
    return {
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "pr_auc": float(average_precision_score(y_true, proba)),
        "log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, proba)),
        "positive_rate": float(np.mean(y_true)),
        "rows": int(len(y_true)),
    }


def cost_threshold(
    y_true: np.ndarray, proba: np.ndarray, cost_fp: float, cost_fn: float
) -> dict[str, float]:
    """The probability threshold with the lowest total cost on (y_true, proba).

    A false positive (calling a customer who will not subscribe) costs ``cost_fp``;
    a false negative (missing one who would) costs ``cost_fn``.

    Returns:
        ``{"threshold", "cost", "cost_per_row", "precision", "recall"}``.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    pos = np.sort(proba[y_true == 1])
    neg = np.sort(proba[y_true == 0])
    # every distinct score is a candidate cut, plus one above all (call nobody)
    candidates = np.append(np.unique(proba), np.nextafter(proba.max(), np.inf))
    tp = len(pos) - np.searchsorted(pos, candidates, side="left")
    fp = len(neg) - np.searchsorted(neg, candidates, side="left")
    cost = fp * cost_fp + (len(pos) - tp) * cost_fn
    best = int(np.argmin(cost))
    return cost_at(y_true, proba, float(candidates[best]), cost_fp, cost_fn)


def cost_at(y_true, proba, threshold, cost_fp, cost_fn) -> dict[str, float]:
    """Cost, precision and recall of a fixed threshold."""
    y_true = np.asarray(y_true)
    pred = np.asarray(proba) >= threshold
    fp = int(np.sum(pred & (y_true == 0)))
    fn = int(np.sum(~pred & (y_true == 1)))
    tp = int(np.sum(pred & (y_true == 1)))
    cost = fp * cost_fp + fn * cost_fn
    return {
        "threshold": float(threshold),
        "cost": float(cost),
        "cost_per_row": float(cost / len(y_true)),
        "precision": float(tp / max(int(pred.sum()), 1)),
        "recall": float(tp / max(int(np.sum(y_true == 1)), 1)),
    }


def calibration_table(y_true, proba, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed positive rate per quantile bin."""
    frac_pos, mean_pred = calibration_curve(
        y_true, proba, n_bins=n_bins, strategy="quantile"
    )
    return pd.DataFrame({"mean_predicted": mean_pred, "observed_rate": frac_pos})


def slice_metrics(
    df: pd.DataFrame, y_true, proba, columns: list[str], min_rows: int = 30
) -> pd.DataFrame:
    """ROC AUC and positive rate per category of each column in ``columns``.

    Slices with fewer than ``min_rows`` rows or a single class get NaN AUC.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba)
    rows = []
    for col in columns:
        if col not in df.columns:
            raise DataValidationError(f"slice column {col!r} is not in the data")
        values = df[col].astype(object).where(df[col].notna(), "(missing)")
        for value in sorted(values.unique(), key=str):
            mask = (values == value).to_numpy()
            n = int(mask.sum())
            auc = np.nan
            if n >= min_rows and len(np.unique(y_true[mask])) == 2:
                auc = float(roc_auc_score(y_true[mask], proba[mask]))
            rows.append(
                {
                    "column": col,
                    "value": str(value),
                    "rows": n,
                    "positive_rate": float(y_true[mask].mean()),
                    "mean_score": float(proba[mask].mean()),
                    "roc_auc": auc,
                }
            )
    return pd.DataFrame(rows)


def compare_families(results: dict[str, dict[str, Any]], baseline: str) -> pd.DataFrame:
    """One row per family: validation and test metrics, and the lift over baseline.

    Args:
        results: ``{family: {"val": metrics, "test": metrics}}``.
        baseline: the family the others are compared with (``logistic``).
    """
    rows = []
    for family, res in results.items():
        row = {"family": family}
        row.update({f"val_{k}": res["val"][k] for k in METRICS})
        row.update({f"test_{k}": res["test"][k] for k in METRICS})
        rows.append(row)
    table = pd.DataFrame(rows).set_index("family")
    if baseline in table.index:
        table["test_roc_auc_vs_baseline"] = (
            table["test_roc_auc"] - table.loc[baseline, "test_roc_auc"]
        )
    return table.sort_values("val_roc_auc", ascending=False)


def select_champion(results: dict[str, dict[str, Any]]) -> str:
    """The family with the best *validation* ROC AUC (test stays untouched)."""
    return max(results, key=lambda f: results[f]["val"]["roc_auc"])


def plot_curves(y_true, probas: dict[str, np.ndarray]):
    """ROC and precision-recall curves of several models on one figure."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, p in probas.items():
        fpr, tpr, _ = roc_curve(y_true, p)
        ax1.plot(fpr, tpr, label=f"{name} ({roc_auc_score(y_true, p):.3f})")
        prec, rec, _ = precision_recall_curve(y_true, p)
        ap = average_precision_score(y_true, p)
        ax2.plot(rec, prec, label=f"{name} ({ap:.3f})")
    ax1.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax1.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    base = float(np.mean(y_true))
    ax2.axhline(base, color="grey", linestyle=":")
    ax2.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax1.legend(loc="lower right")
    ax2.legend(loc="upper right")
    fig.tight_layout()
    return fig


def plot_calibration(tables: dict[str, pd.DataFrame]):
    """Reliability diagram: mean predicted vs observed rate per bin."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, t in tables.items():
        ax.plot(t["mean_predicted"], t["observed_rate"], marker="o", label=name)
    hi = max(
        float(t[["mean_predicted", "observed_rate"]].max().max())
        for t in tables.values()
    )
    ax.plot([0, hi], [0, hi], color="grey", linestyle=":")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed positive rate",
        title="Calibration (test, quantile bins)",
    )
    ax.legend()
    fig.tight_layout()
    return fig
