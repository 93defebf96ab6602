"""Benchmark: the cost of a drift report next to the cost of scoring the same rows.

For 10k, 100k and 1M rows resampled (with replacement, seeded) from the bundled data,
it times

* ``score``: the champion's ``predict_proba`` on the raw rows (the model's own
  coercion, imputation and encoding included), as batch scoring does;
* ``monitor``: :func:`tasks.monitor.monitor` against the training reference (per
  feature PSI + KS / chi-square, missing and unseen shares, schema rule check,
  score drift and the AUC on the labelled rows), the reference already scored;
* ``report``: rendering the HTML page with its plots from the verdict.

Run from the project root after a build (``make build``)::

    .venv/bin/python benchmarks/monitor.py [--sizes 10000 100000 1000000]

The resampled rows come from the same population as the training split, so every
verdict should read ``ok``; the last column shows it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tasks.config import load_env  # noqa: E402
from tasks.io import read_json, read_table  # noqa: E402
from tasks.monitor import monitor, render_report  # noqa: E402
from tasks.schema import load_schema  # noqa: E402


def load_model(env: dict) -> tuple[object, str, float, float | None]:
    """The champion from the registry, else the evaluate stage's candidate on disk.

    Returns:
        (model, description, decision threshold, held-out test ROC AUC or None).
    """
    from tasks.errors import ModelError
    from tasks.score import load_registered_model, resolve_model_uri

    try:
        model, info = load_registered_model(
            env["tracking_uri"], resolve_model_uri(env["model_name"])
        )
        auc = info["tags"].get("test_roc_auc")
        return (
            model,
            f"{info['model_name']} v{info['model_version']} "
            f"({info['tags'].get('family', '?')})",
            info["threshold"],
            float(auc) if auc else None,
        )
    except ModelError:
        from tasks.io import load_model as load_joblib

        metrics = read_json(Path(env["products"]) / "evaluate" / "metrics.json")
        family = metrics["champion"]
        fam = metrics["families"][family]
        return (
            load_joblib(fam["model_path"]),
            f"products/train ({family})",
            metrics["threshold"],
            fam["test"]["roc_auc"],
        )


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000]
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.chdir(ROOT)

    env = load_env()
    schema = load_schema(env["schema_path"])
    train_path = Path(env["products"]) / "split" / "train.parquet"
    if not train_path.is_file():
        sys.exit(f"{train_path} is missing: run `make build` first")
    reference = read_table(train_path)
    source = read_table(ROOT / "data" / "bank-full.csv.gz", csv_sep=";")
    (model, described, threshold, test_auc), t_load = timed(load_model, env)
    features = schema.feature_names
    ref_scores, t_ref = timed(lambda: model.predict_proba(reference[features])[:, 1])

    print(f"model: {described}; loaded in {t_load:.1f} s")
    print(
        f"reference: {train_path.relative_to(ROOT)}, {len(reference)} rows, "
        f"scored in {t_ref:.2f} s (once, reused)"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; numpy {np.__version__}, pandas {pd.__version__}"
    )
    print()
    header = (
        f"{'rows':>9}  {'score s':>8}  {'monitor s':>9}  {'report s':>8}  "
        f"{'monitor/score':>13}  {'rows/s (monitor)':>16}  status"
    )
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(args.seed)
    total = time.perf_counter()
    for n in args.sizes:
        idx = rng.integers(0, len(source), n)
        current = source.iloc[idx].reset_index(drop=True)
        cur_scores, t_score = timed(
            lambda c=current: model.predict_proba(c[features])[:, 1]
        )
        verdict, t_mon = timed(
            monitor,
            reference,
            current,
            schema,
            ref_scores,
            cur_scores,
            reference_auc=test_auc,
            decision_threshold=threshold,
        )
        _, t_rep = timed(render_report, verdict)
        print(
            f"{n:>9,}  {t_score:>8.2f}  {t_mon:>9.2f}  {t_rep:>8.2f}  "
            f"{t_mon / t_score:>13.2f}  {n / t_mon:>16,.0f}  {verdict['status']}",
            flush=True,
        )
    print(
        f"\ntotal {time.perf_counter() - total:.1f} s (model load and reference "
        "scoring excluded)"
    )


if __name__ == "__main__":
    main()
