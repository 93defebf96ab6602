"""Report: an index page linking each executed notebook and the headline results."""

from __future__ import annotations

import html
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

# the order stages appear in on the index page; others follow alphabetically
STAGE_ORDER = (
    "validate",
    "features",
    "train",
    "evaluate",
    "explain",
    "register",
    "model-card",
    "monitor",
)


def _stage_key(path: Path) -> tuple[int, str]:
    name = path.stem
    for i, stage in enumerate(STAGE_ORDER):
        if name.startswith(stage):
            return i, name
    return len(STAGE_ORDER), name


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return html.escape(str(v))


def render_index(
    products_dir: Path,
    register: dict[str, Any],
    evaluation: dict[str, Any],
    scores: pd.DataFrame,
    model_card: Path,
    verdict: dict[str, Any],
    out_dir: Path,
) -> str:
    """HTML for ``products/index.html``.

    Args:
        products_dir: folder holding the executed notebooks rendered as HTML.
        register: the register stage's result (version, promotion decision).
        evaluation: the evaluate stage's metrics (``families``, ``champion``).
        scores: the batch-scored test split (``score``, ``label``, ``model_version``).
        model_card: the model card's HTML page.
        verdict: the monitor stage's verdict (``status``, ``reasons``).
        out_dir: folder the index is written to (links are relative to it).
    """
    pages = sorted(
        (p for p in products_dir.rglob("*.html") if p.name != "index.html"),
        key=_stage_key,
    )
    links = "\n".join(
        f'<li><a href="{html.escape(os.path.relpath(p, out_dir))}">'
        f"{html.escape(p.stem)}</a></li>"
        for p in pages
    )
    fam = evaluation.get("families", {})
    metric_cols = ("roc_auc", "pr_auc", "log_loss", "brier")
    rows = "\n".join(
        "<tr><td>{}</td>{}</tr>".format(
            html.escape(name)
            + (" <b>(candidate)</b>" if name == evaluation.get("champion") else ""),
            "".join(f"<td>{_fmt(res['test'][m])}</td>" for m in metric_cols),
        )
        for name, res in fam.items()
    )
    decision = "promoted to @champion" if register.get("promoted") else "not promoted"
    imp_png = products_dir / "explain" / "importance.png"
    importance = (
        "<h2>What drives the candidate's scores</h2>"
        f'<p><img src="{html.escape(os.path.relpath(imp_png, out_dir))}" '
        'alt="global feature importance" style="max-width:36rem"></p>'
        if imp_png.exists()
        else ""
    )
    monitor_link = os.path.relpath(products_dir / "monitor" / "monitor.html", out_dir)
    label_counts = {str(k): int(v) for k, v in scores["label"].value_counts().items()}
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    dag_png = products_dir / "pipeline.png"
    dag = (
        f'<p><img src="{html.escape(os.path.relpath(dag_png, out_dir))}" '
        'alt="pipeline DAG" style="max-width:100%"></p>'
        if dag_png.exists()
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nbship build report</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3rem .6rem}}
th{{background:#f4f4f4}}
</style></head><body>
<h1>Build report</h1>
<p>Built {built}. Registered <code>{_fmt(register.get("model_name"))}</code>
version <b>{_fmt(register.get("model_version"))}</b>
({_fmt(register.get("family"))}): {decision}. {_fmt(register.get("reason"))}.
Current champion: version <b>{_fmt(register.get("champion_version"))}</b>.
MLflow run <code>{_fmt(register.get("run_id"))}</code>.</p>
<p><b><a href="{html.escape(os.path.relpath(model_card, out_dir))}">Model card</a></b>
(intended use, metrics with confidence intervals, calibration, slices,
limitations, lineage)</p>
<p><b><a href="{html.escape(monitor_link)}">Monitoring report</a></b>:
drift of {_fmt(verdict.get("inputs", {}).get("current"))} against the training split is
<b>{_fmt(verdict.get("status", "?").upper())}</b>.</p>
<h2>Test metrics by model family</h2>
<table><tr><th>family</th>{"".join(f"<th>{m}</th>" for m in metric_cols)}</tr>
{rows}</table>
{importance}
<h2>Batch scoring</h2>
<p>{len(scores)} test rows scored with version
{_fmt(", ".join(sorted(scores["model_version"].unique())))} at threshold
{_fmt(register.get("threshold"))}: labels {_fmt(label_counts)}.</p>
<h2>Executed notebooks</h2>
<ul>
{links}
</ul>
{dag}
<p>Browse runs and the registry with <code>make mlflow-ui</code>.</p>
</body></html>
"""
