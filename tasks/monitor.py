"""Monitor: compare a batch of new data and its predictions with the training reference.

Everything here is a pure function of DataFrames, arrays and keyword parameters;
``nbship monitor`` reads the files, scores them with the champion and writes the
results. What is computed, per feature of the schema:

* **PSI** (population stability index) over bins fixed on the reference: quantile
  bins (``n_bins``, ties merged) for numeric features, the declared categories (plus
  one bin for unseen values) for category features. Shares are floored at
  :data:`EPSILON` so an empty bin gives a large but finite PSI.
* **A test fitting the type**: two-sample Kolmogorov-Smirnov for numeric features,
  chi-square on the 2 x k table of bin counts for category features. The p-values of
  all features are corrected together for multiple testing (Benjamini-Hochberg by
  default, or Bonferroni); the verdict records which.
* **Missing share** in the reference and the current data, and the **unseen share**:
  current rows whose value the model never saw in training (a category outside the
  known ones; for numeric features a value outside the reference's observed range).

PSI and the test are computed on the present (non-missing) values; missing values are
judged by their share alone. Then the model's score distribution (PSI on reference
quantile bins + KS; one test, not corrected) and, when the current data carries the
target, the ROC AUC against the reference AUC (``auc_drop``).

Status rules (thresholds from :data:`DEFAULT_THRESHOLDS`, overridable):

* a feature or the score **alerts** when its shift is significant (adjusted p below
  ``alpha``) *and* large (PSI >= ``psi_alert``), or its unseen share reaches
  ``unseen_share_alert``, or its missing share moved by ``missing_change_alert``;
* it **warns** when significant with PSI >= ``psi_warn``, or PSI >= ``psi_alert``
  without significance (a small batch), or the unseen share reaches
  ``unseen_share_warn``, or the missing share moved by ``missing_change_warn``;
* performance warns when the ROC AUC dropped by ``auc_drop_warn`` and alerts from
  ``auc_drop_alert``, only when the drop also exceeds two (warn) or three (alert)
  standard errors (Hanley-McNeil) of the current AUC;
* rows breaking the schema rules warn from ``invalid_share_warn`` and alert from
  ``invalid_share_alert``;
* the overall status is the worst of these, except that a batch smaller than
  ``min_rows`` is at most ``warn`` (too few rows to act on).

Significance alone never warns: on large batches every tiny difference is
significant, so a size of effect (PSI) is always required.
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tasks.errors import ConfigError, DataError, DataValidationError
from tasks.schema import Column, Schema

STATUSES = ("ok", "warn", "alert")
# exit codes of `nbship monitor`: a scheduler acts on 10 (alert); 3 is bad data
EXIT_CODES = {"ok": 0, "warn": 0, "alert": 10}
CORRECTIONS = ("benjamini-hochberg", "bonferroni")
# a bin's share is floored at this before PSI's log ratio
EPSILON = 1e-4
UNSEEN = "(unseen)"
SCORE_HIST_BINS = 20

DEFAULT_THRESHOLDS: dict[str, Any] = {
    "psi_warn": 0.1,
    "psi_alert": 0.25,
    "alpha": 0.05,
    "correction": "benjamini-hochberg",
    "n_bins": 10,
    "min_rows": 200,
    "missing_change_warn": 0.1,
    "missing_change_alert": 0.2,
    "unseen_share_warn": 0.01,
    "unseen_share_alert": 0.05,
    "invalid_share_warn": 0.01,
    "invalid_share_alert": 0.1,
    "auc_drop_warn": 0.03,
    "auc_drop_alert": 0.07,
}


# ---------------------------------------------------------------- thresholds
def resolve_thresholds(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The defaults updated with ``overrides`` (e.g. env.yaml's ``monitor_thresholds``).

    Raises:
        ConfigError: an unknown key, a value of the wrong type or out of range, or
            a warn level above its alert level.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise ConfigError(
            f"monitor_thresholds: unknown key(s) {unknown}; known: "
            f"{sorted(DEFAULT_THRESHOLDS)}"
        )
    out = dict(DEFAULT_THRESHOLDS)
    for key, value in overrides.items():
        if key == "correction":
            if value not in CORRECTIONS:
                raise ConfigError(
                    f"monitor_thresholds.correction is {value!r}; use one of "
                    f"{list(CORRECTIONS)}"
                )
            out[key] = value
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"monitor_thresholds.{key} must be a number, got {value!r}"
            ) from None
        if not math.isfinite(number) or number < 0:
            raise ConfigError(
                f"monitor_thresholds.{key} must be a finite number >= 0, got {value!r}"
            )
        out[key] = int(number) if key in ("n_bins", "min_rows") else number
    if not 0 < out["alpha"] < 1:
        raise ConfigError(
            f"monitor_thresholds.alpha must be in (0, 1), got {out['alpha']}"
        )
    if out["n_bins"] < 2:
        raise ConfigError(
            f"monitor_thresholds.n_bins must be >= 2, got {out['n_bins']}"
        )
    for stem in ("psi", "missing_change", "unseen_share", "invalid_share", "auc_drop"):
        if out[f"{stem}_warn"] > out[f"{stem}_alert"]:
            raise ConfigError(
                f"monitor_thresholds.{stem}_warn ({out[f'{stem}_warn']}) is above "
                f"{stem}_alert ({out[f'{stem}_alert']})"
            )
    return out


# ---------------------------------------------------------------- statistics
def population_stability_index(
    reference_counts: np.ndarray, current_counts: np.ndarray, epsilon: float = EPSILON
) -> float:
    """PSI = sum((c - r) * ln(c / r)) over bins, with shares floored at ``epsilon``.

    Args:
        reference_counts: counts per bin in the reference.
        current_counts: counts per bin in the current data (same bins).
        epsilon: floor of a share, so an empty bin gives a finite value.

    Returns:
        The PSI (0 for identical distributions; about 0.1 is a moderate shift,
        0.25 a large one). ``nan`` when either side has no values.

    Raises:
        DataValidationError: the two count vectors differ in length.
    """
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    if ref.shape != cur.shape:
        raise DataValidationError(
            f"PSI needs the same bins on both sides, got {ref.shape} and {cur.shape}"
        )
    if ref.sum() == 0 or cur.sum() == 0:
        return float("nan")
    r = np.clip(ref / ref.sum(), epsilon, None)
    c = np.clip(cur / cur.sum(), epsilon, None)
    return float(np.sum((c - r) * np.log(c / r)))


def quantile_edges(reference: np.ndarray, n_bins: int) -> np.ndarray:
    """Interior cut points of ``n_bins`` quantile bins of ``reference`` (ties merged).

    Bins are right-closed: ``(-inf, e0], (e0, e1], ..., (e_last, inf)``; a value
    that takes many rows (e.g. ``pdays = -1``) gets one bin of its own.
    """
    values = np.asarray(reference, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return np.empty(0)
    qs = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    edges = np.unique(qs)
    # the top edge at the maximum would leave the last bin empty in the reference
    return edges[edges < values.max()]


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` (no NaN) in the right-closed bins cut at ``edges``."""
    idx = np.searchsorted(edges, values, side="left")
    return np.bincount(idx, minlength=len(edges) + 1)


def ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test: (statistic, p-value)."""
    res = stats.ks_2samp(reference, current, method="asymp")
    return float(res.statistic), float(res.pvalue)


def chi_square_test(
    reference_counts: np.ndarray, current_counts: np.ndarray
) -> tuple[float, float]:
    """Chi-square test of homogeneity on the 2 x k table of counts.

    Bins empty on both sides are dropped; with fewer than two bins left the
    distributions cannot differ and the result is (0, 1).
    """
    table = np.vstack([reference_counts, current_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue)


def adjust_p_values(
    p_values: list[float | None], method: str = "benjamini-hochberg"
) -> list[float | None]:
    """Correct p-values for multiple testing; ``None`` entries are kept as ``None``.

    Raises:
        ConfigError: ``method`` is not one of :data:`CORRECTIONS`.
    """
    if method not in CORRECTIONS:
        raise ConfigError(f"unknown correction {method!r}; use one of {CORRECTIONS}")
    present = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = list(p_values)
    if not present:
        return out
    ps = np.array([p_values[i] for i in present], dtype=float)
    if method == "bonferroni":
        adj = np.minimum(ps * len(ps), 1.0)
    else:
        adj = stats.false_discovery_control(ps, method="bh")
    for i, a in zip(present, adj, strict=True):
        out[i] = float(a)
    return out


def auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) standard error of a ROC AUC."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    a2 = auc * auc
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - a2) + (n_neg - 1) * (q2 - a2)) / (
        n_pos * n_neg
    )
    return float(math.sqrt(max(var, 0.0)))


# ---------------------------------------------------------------- per column
def _numeric_values(s: pd.Series) -> np.ndarray:
    """float64 values (NaN for missing or unparsable), as :func:`coerce_frame` gives."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _category_key(v: Any) -> str:
    # 1.0 read from a CSV must match category "1", as in tasks.schema
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _category_counts(
    s: pd.Series, missing_tokens: tuple[str, ...]
) -> tuple[dict[str, int], int]:
    """(counts per category as text, number of missing) without a per-row loop."""
    vc = s.value_counts(dropna=False)
    counts: dict[str, int] = {}
    missing = 0
    for value, n in vc.items():
        if pd.isna(value) or (isinstance(value, str) and value in missing_tokens):
            missing += int(n)
            continue
        key = _category_key(value)
        counts[key] = counts.get(key, 0) + int(n)
    return counts, missing


def _fmt_edge(x: float) -> str:
    return f"{x:.6g}"


def _numeric_profile(ref: pd.Series, cur: pd.Series, n_bins: int) -> dict[str, Any]:
    r = _numeric_values(ref)
    c = _numeric_values(cur)
    r_present, c_present = r[~np.isnan(r)], c[~np.isnan(c)]
    out: dict[str, Any] = {
        "missing_share_ref": float(np.isnan(r).mean()),
        "missing_share_cur": float(np.isnan(c).mean()),
        "test": "ks",
        "statistic": None,
        "p_value": None,
        "psi": None,
        "unseen_share": 0.0,
    }
    edges = quantile_edges(r_present, n_bins)
    labels = (
        [f"<= {_fmt_edge(edges[0])}"]
        + [
            f"({_fmt_edge(a)}, {_fmt_edge(b)}]"
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
        + [f"> {_fmt_edge(edges[-1])}"]
        if edges.size
        else ["all"]
    )
    rc = bin_counts(r_present, edges)
    cc = bin_counts(c_present, edges)
    out["bins"] = {
        "labels": labels,
        "reference": _shares(rc),
        "current": _shares(cc),
    }
    if r_present.size and c_present.size:
        out["psi"] = population_stability_index(rc, cc)
        out["statistic"], out["p_value"] = ks_test(r_present, c_present)
        outside = (c_present < r_present.min()) | (c_present > r_present.max())
        out["unseen_share"] = float(outside.sum() / len(c))
    return out


def _categorical_profile(
    ref: pd.Series, cur: pd.Series, col: Column, missing_tokens: tuple[str, ...]
) -> dict[str, Any]:
    rcounts, rmiss = _category_counts(ref, missing_tokens)
    ccounts, cmiss = _category_counts(cur, missing_tokens)
    known = list(col.categories) if col.categories is not None else sorted(rcounts)
    unseen_ref = sum(n for k, n in rcounts.items() if k not in known)
    unseen_cur = sum(n for k, n in ccounts.items() if k not in known)
    labels = list(known)
    rc = [rcounts.get(k, 0) for k in known]
    cc = [ccounts.get(k, 0) for k in known]
    if unseen_ref or unseen_cur:
        labels.append(UNSEEN)
        rc.append(unseen_ref)
        cc.append(unseen_cur)
    rc_arr, cc_arr = np.array(rc), np.array(cc)
    n_ref, n_cur = len(ref), len(cur)
    out: dict[str, Any] = {
        "missing_share_ref": rmiss / n_ref if n_ref else 0.0,
        "missing_share_cur": cmiss / n_cur if n_cur else 0.0,
        "test": "chi-square",
        "statistic": None,
        "p_value": None,
        "psi": None,
        "unseen_share": unseen_cur / n_cur if n_cur else 0.0,
        "bins": {
            "labels": labels,
            "reference": _shares(rc_arr),
            "current": _shares(cc_arr),
        },
    }
    if rc_arr.sum() and cc_arr.sum():
        out["psi"] = population_stability_index(rc_arr, cc_arr)
        out["statistic"], out["p_value"] = chi_square_test(rc_arr, cc_arr)
    return out


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(x / total) if total else 0.0 for x in counts]


def _worst(statuses: list[str]) -> str:
    return max(statuses, key=STATUSES.index, default="ok")


def _drift_status(
    psi: float | None, p: float | None, t: dict[str, Any], what: str
) -> tuple[str, list[str]]:
    """Status of a distribution shift from its PSI and (adjusted) p-value."""
    if psi is None or p is None or math.isnan(psi):
        return "ok", []
    significant = p < t["alpha"]
    if significant and psi >= t["psi_alert"]:
        return "alert", [f"{what}: PSI {psi:.3f} >= {t['psi_alert']} (p {p:.2g})"]
    if significant and psi >= t["psi_warn"]:
        return "warn", [f"{what}: PSI {psi:.3f} >= {t['psi_warn']} (p {p:.2g})"]
    if psi >= t["psi_alert"]:
        return "warn", [
            f"{what}: PSI {psi:.3f} >= {t['psi_alert']} but not significant "
            f"(p {p:.2g}); too few rows to be sure"
        ]
    return "ok", []


def _level(value: float, warn: float, alert: float) -> str:
    if value >= alert:
        return "alert"
    if value >= warn:
        return "warn"
    return "ok"


def _feature_status(name: str, f: dict[str, Any], t: dict[str, Any]) -> list[str]:
    """Set ``f["status"]`` and return the reasons for it."""
    status, reasons = _drift_status(f["psi"], f["p_adjusted"], t, name)
    statuses = [status]
    change = abs(f["missing_share_cur"] - f["missing_share_ref"])
    level = _level(change, t["missing_change_warn"], t["missing_change_alert"])
    if level != "ok":
        statuses.append(level)
        reasons.append(
            f"{name}: missing share {f['missing_share_ref']:.3f} -> "
            f"{f['missing_share_cur']:.3f}"
        )
    level = _level(f["unseen_share"], t["unseen_share_warn"], t["unseen_share_alert"])
    if level != "ok":
        statuses.append(level)
        reasons.append(
            f"{name}: {f['unseen_share']:.1%} of rows hold values unseen in training"
        )
    f["status"] = _worst(statuses)
    return reasons


# ---------------------------------------------------------------- sections
def prediction_drift(
    reference_scores: np.ndarray,
    current_scores: np.ndarray,
    thresholds: dict[str, Any] | None = None,
    decision_threshold: float | None = None,
) -> dict[str, Any]:
    """Drift of the model's scores: PSI on reference quantile bins and a KS test.

    Args:
        reference_scores: positive-class probabilities on the reference rows.
        current_scores: the same on the current rows.
        thresholds: see :func:`resolve_thresholds` (default: the defaults).
        decision_threshold: the model's label threshold; adds the positive rates.

    Returns:
        ``{"psi", "test": "ks", "statistic", "p_value", "mean_ref", "mean_cur",
        "positive_rate_ref", "positive_rate_cur", "decision_threshold", "histogram":
        {"edges", "reference", "current"}, "status", "reasons"}``. The p-value is a
        single test and is not corrected.

    Raises:
        DataValidationError: either side is empty or holds NaN.
    """
    t = resolve_thresholds(thresholds)
    r = np.asarray(reference_scores, dtype=float)
    c = np.asarray(current_scores, dtype=float)
    for what, arr in (("reference", r), ("current", c)):
        if arr.size == 0 or np.isnan(arr).any():
            raise DataValidationError(
                f"{what} scores must be non-empty and without NaN "
                f"({arr.size} values, {int(np.isnan(arr).sum())} NaN)"
            )
    edges = quantile_edges(r, t["n_bins"])
    psi = population_stability_index(bin_counts(r, edges), bin_counts(c, edges))
    statistic, p = ks_test(r, c)
    hist_edges = np.linspace(0.0, 1.0, SCORE_HIST_BINS + 1)
    out: dict[str, Any] = {
        "psi": psi,
        "test": "ks",
        "statistic": statistic,
        "p_value": p,
        "mean_ref": float(r.mean()),
        "mean_cur": float(c.mean()),
        "decision_threshold": decision_threshold,
        "positive_rate_ref": None,
        "positive_rate_cur": None,
        "histogram": {
            "edges": [float(e) for e in hist_edges],
            "reference": _shares(np.histogram(np.clip(r, 0, 1), hist_edges)[0]),
            "current": _shares(np.histogram(np.clip(c, 0, 1), hist_edges)[0]),
        },
    }
    if decision_threshold is not None:
        out["positive_rate_ref"] = float((r >= decision_threshold).mean())
        out["positive_rate_cur"] = float((c >= decision_threshold).mean())
    out["status"], out["reasons"] = _drift_status(psi, p, t, "prediction score")
    return out


def performance_change(
    y_true: np.ndarray,
    scores: np.ndarray,
    reference_auc: float,
    thresholds: dict[str, Any] | None = None,
    reference_source: str = "reference",
) -> dict[str, Any] | None:
    """ROC AUC on the labelled current rows against the reference AUC.

    Args:
        y_true: 0/1 labels of the current rows (NaN where not labelled yet).
        scores: the model's scores on the same rows.
        reference_auc: the AUC to compare with (ideally the held-out test AUC
            recorded when the model was trained, not the in-sample training AUC).
        thresholds: see :func:`resolve_thresholds`.
        reference_source: where ``reference_auc`` comes from (shown in the report).

    Returns:
        ``None`` when no row is labelled, else ``{"metric": "roc_auc", "reference",
        "reference_source", "current", "drop", "standard_error", "labeled_rows",
        "positive_rate", "status", "reasons"}``; ``current`` is ``None`` (status ok,
        with a reason) when the labels hold one class only.

    Raises:
        DataValidationError: ``y_true`` and ``scores`` differ in length.
    """
    from sklearn.metrics import roc_auc_score

    t = resolve_thresholds(thresholds)
    y = np.asarray(y_true, dtype=float)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape:
        raise DataValidationError(f"labels have {len(y)} rows but scores have {len(s)}")
    labelled = ~np.isnan(y)
    if not labelled.any():
        return None
    y, s = y[labelled], s[labelled]
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    out: dict[str, Any] = {
        "metric": "roc_auc",
        "reference": float(reference_auc),
        "reference_source": reference_source,
        "current": None,
        "drop": None,
        "standard_error": None,
        "labeled_rows": int(labelled.sum()),
        "positive_rate": float(n_pos / len(y)),
        "status": "ok",
        "reasons": [],
    }
    if n_pos == 0 or n_neg == 0:
        out["reasons"] = ["performance: labels hold one class only; AUC undefined"]
        return out
    auc = float(roc_auc_score(y, s))
    drop = float(reference_auc) - auc
    se = auc_standard_error(auc, n_pos, n_neg)
    out.update(current=auc, drop=drop, standard_error=se)
    # the drop must also exceed sampling noise: a few hundred labelled rows move
    # the AUC by several hundredths on their own
    if drop >= t["auc_drop_alert"] and drop > 3 * se:
        out["status"] = "alert"
    elif drop >= t["auc_drop_warn"] and drop > 2 * se:
        out["status"] = "warn"
    if out["status"] != "ok":
        out["reasons"] = [
            f"performance: ROC AUC {reference_auc:.4f} -> {auc:.4f} "
            f"(drop {drop:.4f}, standard error {se:.4f})"
        ]
    return out


def data_quality(current_df: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """Rows of ``current_df`` breaking the schema's rules on the feature columns.

    Returns:
        ``{"invalid_rows", "invalid_share", "by_column": {name: count}}``.
    """
    from tasks.validate import find_row_errors

    reasons = find_row_errors(current_df, schema, columns=schema.feature_names)
    bad = reasons[reasons != ""]
    by_column: dict[str, int] = {}
    for text in bad:
        for name in {part.split(":", 1)[0] for part in text.split("; ")}:
            by_column[name] = by_column.get(name, 0) + 1
    n = len(current_df)
    return {
        "invalid_rows": int(len(bad)),
        "invalid_share": float(len(bad) / n) if n else 0.0,
        "by_column": dict(sorted(by_column.items())),
    }


def check_columns(df: pd.DataFrame, schema: Schema, what: str) -> None:
    """Check that ``df`` is a non-empty table holding every feature of the schema.

    Raises:
        DataValidationError: a feature column is missing (all of them are named).
        DataError: the table has no rows.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(
            f"{what} data must be a DataFrame, got {type(df).__name__}"
        )
    missing = [c for c in schema.feature_names if c not in df.columns]
    if missing:
        raise DataValidationError(
            f"{what} data is missing feature column(s) {missing}; it needs every "
            f"feature of the schema: {schema.feature_names}",
            issues=[
                {
                    "column": c,
                    "rule": "present",
                    "message": "column missing",
                    "examples": [],
                }
                for c in missing
            ],
        )
    if len(df) == 0:
        raise DataError(f"{what} data has no rows: nothing to compare")


# ---------------------------------------------------------------- verdict
def monitor(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    schema: Schema,
    ref_scores: np.ndarray | None = None,
    cur_scores: np.ndarray | None = None,
    thresholds: dict[str, Any] | None = None,
    *,
    reference_auc: float | None = None,
    reference_auc_source: str | None = None,
    decision_threshold: float | None = None,
    inputs: dict[str, Any] | None = None,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """Compare a batch of new data (and its scores) with the training reference.

    Args:
        reference_df: the training reference, with every feature column of the
            schema (raw or canonical dtypes; missing tokens such as ``unknown`` are
            treated as missing). The target is used only to compute the reference
            AUC when ``reference_auc`` is not given.
        current_df: the new batch, same columns; the target is optional (its rows
            with a label are used for the performance section).
        schema: the declared schema.
        ref_scores: the model's positive-class probabilities on ``reference_df``.
        cur_scores: the same on ``current_df``. Without both, ``prediction`` and
            ``performance`` are ``None``.
        thresholds: overrides of :data:`DEFAULT_THRESHOLDS`.
        reference_auc: the AUC to judge the current one against; default: the AUC
            on ``reference_df`` (optimistic when it is the training split).
        reference_auc_source: a word on where ``reference_auc`` comes from.
        decision_threshold: the model's label threshold (adds positive rates).
        inputs: free facts recorded as they are (paths, model version).
        created_at: timestamp of the verdict (default: now, UTC).

    Returns:
        The verdict, JSON-serialisable, with keys ``status`` (ok|warn|alert),
        ``reasons`` (list of str), ``thresholds``, ``correction``, ``features``
        (per feature: ``psi``, ``test``, ``statistic``, ``p_value``, ``p_adjusted``,
        ``missing_share_ref``, ``missing_share_cur``, ``unseen_share``, ``status``,
        ``bins``), ``prediction`` (see :func:`prediction_drift`) or ``None``,
        ``performance`` (see :func:`performance_change`) or ``None``,
        ``data_quality`` (see :func:`data_quality`), ``rows`` (``reference``,
        ``current``), ``inputs`` and ``created_at`` (ISO 8601).

    Raises:
        DataValidationError: a feature column is missing from either frame, or the
            scores do not match the rows.
        DataError: either frame has no rows.
        ConfigError: a threshold is unknown or invalid.
    """
    t = resolve_thresholds(thresholds)
    check_columns(reference_df, schema, "reference")
    check_columns(current_df, schema, "current")
    if (ref_scores is None) != (cur_scores is None):
        raise DataValidationError("pass both ref_scores and cur_scores, or neither")
    for what, scores, df in (
        ("reference", ref_scores, reference_df),
        ("current", cur_scores, current_df),
    ):
        if scores is not None and len(scores) != len(df):
            raise DataValidationError(
                f"{what} scores have {len(scores)} values for {len(df)} rows"
            )

    features: dict[str, dict[str, Any]] = {}
    for col in schema.features:
        if col.is_numeric:
            f = _numeric_profile(
                reference_df[col.name], current_df[col.name], t["n_bins"]
            )
        else:
            f = _categorical_profile(
                reference_df[col.name], current_df[col.name], col, schema.missing_values
            )
        features[col.name] = f
    names = list(features)
    adjusted = adjust_p_values([features[n]["p_value"] for n in names], t["correction"])
    reasons: list[str] = []
    statuses: list[str] = []
    for name, p_adj in zip(names, adjusted, strict=True):
        f = features[name]
        f["p_adjusted"] = p_adj
        reasons += _feature_status(name, f, t)
        statuses.append(f["status"])
        # the verdict's contract: this key set, in this order
        features[name] = {
            k: f[k]
            for k in (
                "status",
                "psi",
                "test",
                "statistic",
                "p_value",
                "p_adjusted",
                "missing_share_ref",
                "missing_share_cur",
                "unseen_share",
                "bins",
            )
        }

    prediction = None
    performance = None
    if ref_scores is not None and cur_scores is not None:
        prediction = prediction_drift(ref_scores, cur_scores, t, decision_threshold)
        statuses.append(prediction["status"])
        reasons += prediction["reasons"]
        if schema.target in current_df.columns:
            from tasks.features import target_vector

            y_cur = _labels(current_df, schema)
            if reference_auc is None and schema.target in reference_df.columns:
                from sklearn.metrics import roc_auc_score

                y_ref = target_vector(reference_df, schema)
                if len(np.unique(y_ref)) == 2:
                    reference_auc = float(roc_auc_score(y_ref, ref_scores))
                    reference_auc_source = reference_auc_source or "reference data"
            if reference_auc is not None:
                performance = performance_change(
                    y_cur,
                    np.asarray(cur_scores),
                    reference_auc,
                    t,
                    reference_auc_source or "given",
                )
                if performance is not None:
                    statuses.append(performance["status"])
                    reasons += performance["reasons"]

    quality = data_quality(current_df, schema)
    level = _level(
        quality["invalid_share"], t["invalid_share_warn"], t["invalid_share_alert"]
    )
    if level != "ok":
        statuses.append(level)
        reasons.append(
            f"{quality['invalid_rows']} rows ({quality['invalid_share']:.1%}) break "
            f"the schema's rules: {quality['by_column']}"
        )

    status = _worst(statuses)
    if len(current_df) < t["min_rows"] and status == "alert":
        status = "warn"
        reasons.append(
            f"only {len(current_df)} current rows (< min_rows {t['min_rows']}): "
            "alert lowered to warn"
        )
    elif len(current_df) < t["min_rows"]:
        reasons.append(
            f"only {len(current_df)} current rows (< min_rows {t['min_rows']}): "
            "drift measures are noisy"
        )
    created = created_at or datetime.now(UTC)
    return {
        "status": status,
        "reasons": reasons,
        "thresholds": t,
        "correction": t["correction"],
        "features": features,
        "prediction": prediction,
        "performance": performance,
        "data_quality": quality,
        "rows": {"reference": int(len(reference_df)), "current": int(len(current_df))},
        "inputs": dict(inputs or {}),
        "created_at": created.isoformat(timespec="seconds"),
    }


def monitor_model(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    schema: Schema,
    model,
    info: dict[str, Any],
    thresholds: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`monitor` with scores from a registered model.

    Both frames are scored with ``model`` (``predict_proba``); the current AUC is
    judged against the ``test_roc_auc`` the version recorded when it was trained
    (the training split would be optimistic).

    Args:
        reference_df, current_df, schema, thresholds: as for :func:`monitor`.
        model: fitted pipeline with ``predict_proba``.
        info: registry facts from :func:`tasks.score.load_registered_model`.
        inputs: free facts recorded in the verdict (paths); the model is added.
    """
    features = schema.feature_names
    test_auc = info["tags"].get("test_roc_auc")
    return monitor(
        reference_df,
        current_df,
        schema,
        model.predict_proba(reference_df[features])[:, 1],
        model.predict_proba(current_df[features])[:, 1],
        thresholds,
        reference_auc=float(test_auc) if test_auc else None,
        reference_auc_source=(
            f"test split when version {info['model_version']} was trained"
        )
        if test_auc
        else None,
        decision_threshold=info["threshold"],
        inputs={
            **(inputs or {}),
            "model": f"{info['model_name']} v{info['model_version']}",
        },
    )


def _labels(df: pd.DataFrame, schema: Schema) -> np.ndarray:
    """0/1 target with NaN where the label is missing or not one of the two."""
    neg, pos = schema.labels
    text = df[schema.target].map(lambda v: v if pd.isna(v) else _category_key(v))
    y = np.full(len(df), np.nan)
    y[(text == pos).to_numpy()] = 1.0
    y[(text == neg).to_numpy()] = 0.0
    return y


def exit_code(verdict: dict[str, Any]) -> int:
    """The command's exit code for a verdict: 0 ok or warn, 10 alert."""
    return EXIT_CODES[verdict["status"]]


# ---------------------------------------------------------------- report
_COLORS = {"ok": "#2e7d32", "warn": "#ef6c00", "alert": "#c62828"}
_REF_COLOR, _CUR_COLOR = "#90a4ae", "#1565c0"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def plot_psi(verdict: dict[str, Any]):
    """Horizontal bars of each feature's PSI, coloured by status, threshold lines."""
    from matplotlib.figure import Figure

    feats = verdict["features"]
    names = sorted(feats, key=lambda n: feats[n]["psi"] or 0.0)
    values = [feats[n]["psi"] or 0.0 for n in names]
    fig = Figure(figsize=(7, 0.3 * len(names) + 1.2))
    ax = fig.subplots()
    ax.barh(names, values, color=[_COLORS[feats[n]["status"]] for n in names])
    t = verdict["thresholds"]
    ax.axvline(t["psi_warn"], color=_COLORS["warn"], ls="--", lw=1, label="psi_warn")
    ax.axvline(t["psi_alert"], color=_COLORS["alert"], ls="--", lw=1, label="psi_alert")
    ax.set_xlabel("population stability index")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_bins(name: str, bins: dict[str, Any]):
    """Reference vs current share per bin (quantile bins or categories)."""
    from matplotlib.figure import Figure

    labels = bins["labels"]
    x = np.arange(len(labels))
    fig = Figure(figsize=(max(4.5, 0.45 * len(labels) + 2), 3))
    ax = fig.subplots()
    ax.bar(x - 0.2, bins["reference"], 0.4, label="reference", color=_REF_COLOR)
    ax.bar(x + 0.2, bins["current"], 0.4, label="current", color=_CUR_COLOR)
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share of present values")
    ax.set_title(name)
    ax.legend(fontsize=8)
    return fig


def plot_scores(prediction: dict[str, Any]):
    """Score histograms (shares per 0.05 bin), reference vs current."""
    from matplotlib.figure import Figure

    h = prediction["histogram"]
    edges = np.asarray(h["edges"])
    width = np.diff(edges)
    fig = Figure(figsize=(6, 3))
    ax = fig.subplots()
    ax.bar(
        edges[:-1],
        h["reference"],
        width,
        align="edge",
        alpha=0.6,
        label="reference",
        color=_REF_COLOR,
    )
    ax.bar(
        edges[:-1],
        h["current"],
        width,
        align="edge",
        alpha=0.6,
        label="current",
        color=_CUR_COLOR,
    )
    if prediction.get("decision_threshold") is not None:
        ax.axvline(
            prediction["decision_threshold"],
            color="k",
            ls=":",
            lw=1,
            label="decision threshold",
        )
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("share of rows")
    ax.legend(fontsize=8)
    return fig


def _cell(v: Any) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    return html.escape(str(v))


def _badge(status: str) -> str:
    return (
        f'<span class="badge" style="background:{_COLORS[status]}">'
        f"{status.upper()}</span>"
    )


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{c if isinstance(c, str) and c.startswith('<span') else _cell(c)}"
            "</td>"
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>\n{body}</table>"


def render_report(verdict: dict[str, Any], top: int = 6) -> str:
    """A self-contained HTML page (inline CSS, PNG plots embedded as base64).

    Args:
        verdict: the result of :func:`monitor`.
        top: how many of the most drifted features get their own plot.

    Returns:
        The page; it loads nothing from the network.
    """
    feats = verdict["features"]
    ranked = sorted(
        feats,
        key=lambda n: (STATUSES.index(feats[n]["status"]), feats[n]["psi"] or 0.0),
        reverse=True,
    )
    feature_rows = [
        [
            name,
            _badge(f["status"]),
            f["psi"],
            f["test"],
            f["statistic"],
            f["p_value"],
            f["p_adjusted"],
            f["missing_share_ref"],
            f["missing_share_cur"],
            f["unseen_share"],
        ]
        for name, f in ((n, feats[n]) for n in ranked)
    ]
    parts = [
        "<h2>Summary</h2>",
        f"<p>Status: {_badge(verdict['status'])} &nbsp; "
        f"{verdict['rows']['current']} current rows against "
        f"{verdict['rows']['reference']} reference rows; created "
        f"{html.escape(verdict['created_at'])}.</p>",
        "<ul>"
        + "".join(f"<li>{html.escape(r)}</li>" for r in verdict["reasons"])
        + "</ul>"
        if verdict["reasons"]
        else "<p>No threshold crossed.</p>",
    ]
    if verdict["inputs"]:
        parts.append(
            _table([[k, v] for k, v in verdict["inputs"].items()], ["input", "value"])
        )
    parts += [
        "<h2>Feature drift</h2>",
        f"<p>Tests: KS (numeric), chi-square (category); p-values corrected with "
        f"{html.escape(verdict['correction'])} across {len(feats)} features.</p>",
        _img(plot_psi(verdict), "PSI per feature"),
        _table(
            feature_rows,
            [
                "feature",
                "status",
                "PSI",
                "test",
                "statistic",
                "p-value",
                "p adjusted",
                "missing ref",
                "missing cur",
                "unseen share",
            ],
        ),
        f"<h2>Most drifted features (top {min(top, len(ranked))})</h2>",
        "".join(_img(plot_bins(n, feats[n]["bins"]), n) for n in ranked[:top]),
    ]
    pred = verdict["prediction"]
    if pred is not None:
        parts += [
            "<h2>Prediction score drift</h2>",
            f"<p>Status: {_badge(pred['status'])}</p>",
            _table(
                [
                    [k, pred[k]]
                    for k in (
                        "psi",
                        "statistic",
                        "p_value",
                        "mean_ref",
                        "mean_cur",
                        "decision_threshold",
                        "positive_rate_ref",
                        "positive_rate_cur",
                    )
                ],
                ["measure", "value"],
            ),
            _img(plot_scores(pred), "score distribution"),
        ]
    perf = verdict["performance"]
    if perf is not None:
        parts += [
            "<h2>Performance (labelled rows)</h2>",
            f"<p>Status: {_badge(perf['status'])}</p>",
            _table(
                [
                    [k, perf[k]]
                    for k in (
                        "metric",
                        "reference",
                        "reference_source",
                        "current",
                        "drop",
                        "standard_error",
                        "labeled_rows",
                        "positive_rate",
                    )
                ],
                ["measure", "value"],
            ),
        ]
    dq = verdict["data_quality"]
    parts += [
        "<h2>Data quality</h2>",
        f"<p>{dq['invalid_rows']} rows ({dq['invalid_share']:.2%}) break the schema's "
        "rules (they are still compared and scored).</p>",
        _table([[k, v] for k, v in dq["by_column"].items()], ["column", "invalid rows"])
        if dq["by_column"]
        else "",
        "<h2>Thresholds</h2>",
        _table(
            [[k, v] for k, v in verdict["thresholds"].items()], ["threshold", "value"]
        ),
    ]
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        ".badge{color:#fff;padding:2px 8px;border-radius:3px;font-weight:bold}"
        "img{margin:4px;vertical-align:top}"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Monitoring report: {verdict['status']}</title>"
        f"<style>{style}</style></head><body>\n<h1>Monitoring report</h1>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
