"""Model card: what a registered model is for, how good it is, and where it came from.

:func:`bootstrap_metrics` gives confidence intervals; :func:`render_model_card`
turns the build's facts into Markdown (and :func:`to_html` into a standalone page).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from tasks.errors import DataValidationError
from tasks.schema import Schema

METRIC_FUNCS = {
    "roc_auc": roc_auc_score,
    "pr_auc": average_precision_score,
    "brier": brier_score_loss,
}


def bootstrap_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    n_boot: int = 300,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float]]:
    """Point estimate and percentile bootstrap interval of each metric.

    Rows are resampled with replacement ``n_boot`` times (seeded); resamples with a
    single class are skipped.

    Returns:
        ``{metric: {"value", "low", "high", "n_boot"}}``.

    Raises:
        DataValidationError: fewer than 2 classes or mismatched lengths.
    """
    y_true, proba = np.asarray(y_true), np.asarray(proba, dtype=float)
    if len(y_true) != len(proba) or len(np.unique(y_true)) != 2:
        raise DataValidationError("bootstrap needs equal lengths and both classes")
    rng = np.random.default_rng(seed)
    n = len(y_true)
    samples: dict[str, list[float]] = {m: [] for m in METRIC_FUNCS}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if y_true[idx].min() == y_true[idx].max():
            continue
        for name, fn in METRIC_FUNCS.items():
            samples[name].append(float(fn(y_true[idx], proba[idx])))
    tail = (1 - level) / 2 * 100
    return {
        name: {
            "value": float(fn(y_true, proba)),
            "low": float(np.percentile(samples[name], tail)),
            "high": float(np.percentile(samples[name], 100 - tail)),
            "n_boot": len(samples[name]),
        }
        for name, fn in METRIC_FUNCS.items()
    }


def _table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_model_card(
    *,
    schema: Schema,
    register: dict[str, Any],
    evaluation: dict[str, Any],
    ci: dict[str, dict[str, float]],
    calibration: pd.DataFrame,
    importance: pd.Series,
    source: dict[str, Any],
    split: dict[str, Any],
    lineage: dict[str, str],
    intended_use: str,
    limitations: list[str],
) -> str:
    """The model card as Markdown.

    Args:
        schema: declared schema (features, target, dropped columns).
        register: the register stage's result (name, version, promotion).
        evaluation: the evaluate stage's metrics (families, threshold, slices).
        ci: :func:`bootstrap_metrics` on the test split for this model.
        calibration: mean predicted vs observed rate per bin (test split).
        importance: mean |contribution| per input feature.
        source: the ingest stage's facts (source, sha256, rows).
        split: the split stage's facts (rows per part, positive rates).
        lineage: ``lineage.*`` tags of the build.
        intended_use: one paragraph on what the model is for.
        limitations: known limitations, one sentence each.
    """
    family = register["family"]
    fams = evaluation["families"]
    baseline = evaluation.get("baseline", "logistic")
    metrics_rows = pd.DataFrame(
        [
            {
                "metric": m,
                "value": v["value"],
                "95% CI low": v["low"],
                "95% CI high": v["high"],
            }
            for m, v in ci.items()
        ]
    )
    compare = pd.DataFrame(
        [
            {
                "family": f,
                "test ROC AUC": r["test"]["roc_auc"],
                "test PR AUC": r["test"]["pr_auc"],
                "test log loss": r["test"]["log_loss"],
            }
            for f, r in fams.items()
        ]
    )
    features = pd.DataFrame(
        [
            {
                "feature": c.name,
                "type": c.type,
                "missing allowed": c.nullable,
                "description": c.description,
            }
            for c in schema.features
        ]
    )
    slices = pd.DataFrame(evaluation.get("slices", []))
    if not slices.empty:
        slices = slices[["column", "value", "rows", "positive_rate", "roc_auc"]]
    cost = evaluation.get("cost", {})
    decision = (
        "promoted to `@champion`"
        if register.get("promoted")
        else "registered, not promoted"
    )
    lines = [
        f"# Model card: {register['model_name']} version {register['model_version']}",
        "",
        f"*Generated {datetime.now(UTC):%Y-%m-%d %H:%M UTC} by the "
        f"`model-card` stage. {family} model, {decision}: {register['reason']}.*",
        "",
        "## Intended use",
        intended_use,
        "",
        f"Input: one row per client with the {len(schema.features)} features below. "
        f"Output: the probability that `{schema.target}` is "
        f"`{schema.positive_label}`, and a label at threshold "
        f"{evaluation['threshold']:.4f} (chosen on validation to minimise the cost "
        f"{cost.get('cost_fp', '?')} per false positive, {cost.get('cost_fn', '?')} "
        "per false negative).",
        "",
        "## Data",
        f"- source: `{source['source']}` ({source['rows']} rows)",
        f"- SHA-256: `{source['sha256']}`",
        f"- split (stratified, seed {split.get('seed')}): "
        + ", ".join(f"{k} {v}" for k, v in split.get("rows", {}).items())
        + "; positive rate "
        + ", ".join(f"{k} {v:.3f}" for k, v in split.get("positive_rate", {}).items()),
        "",
        "## Features",
        _table(features),
        "",
        f"Not used: {', '.join(f'`{d}`' for d in schema.drop) or 'none'}.",
        "",
        "## Performance on the test split",
        f"Bootstrap 95% intervals ({ci['roc_auc']['n_boot']} resamples):",
        "",
        _table(metrics_rows),
        "",
        f"Against the other families (baseline: {baseline}):",
        "",
        _table(compare),
        "",
        "### Calibration (quantile bins)",
        _table(
            calibration.rename(
                columns={
                    "mean_predicted": "mean predicted",
                    "observed_rate": "observed rate",
                }
            )
        ),
        "",
    ]
    if not slices.empty:
        lines += ["### Slices", _table(slices), ""]
    lines += [
        "## Most influential features",
        _table(
            importance.head(10)
            .rename("mean |contribution|")
            .reset_index()
            .rename(columns={"index": "feature"})
        ),
        "",
        "## Known limitations",
        *[f"- {item}" for item in limitations],
        "",
        "## Lineage",
        _table(pd.DataFrame(sorted(lineage.items()), columns=["tag", "value"])),
        "",
    ]
    return "\n".join(lines)


def to_html(markdown: str, title: str) -> str:
    """A standalone HTML page (no external assets) for a Markdown model card."""
    import mistune

    body = mistune.html(markdown)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;margin:.5rem 0}}
td,th{{border:1px solid #ccc;padding:.25rem .5rem;font-size:.9rem}}
th{{background:#f4f4f4}}code{{background:#f4f4f4;padding:0 .2rem}}
</style></head><body>
{body}
</body></html>
"""
