"""How much does the notebook pipeline cost over plain Python?

Runs, on the default data and the default parameters (env.yaml), in temporary
folders (the real products and MLflow store are not touched):

1. a full `ploomber build --force` with the papermill executor (the default);
2. a no-op rebuild (nothing changed: no task runs);
3. a full build with Ploomber's in-process executor (`--env--executor
   ploomber-engine`);
4. the floor: the same `tasks/` functions called in one plain Python process
   (every stage's computation; not the notebooks' own tables and plots, nor their
   HTML rendering).

Prints a table of wall-clock seconds and the ratio to the floor. Usage:

    .venv/bin/python benchmarks/build.py [--n-trials N] [--sample ROWS]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TIMEOUT = 900  # seconds; a run past it is reported as nan


def ploomber_build(root: Path, *extra: str) -> tuple[float, str]:
    cmd = [
        str(BIN / "ploomber"),
        "build",
        "--env--products",
        str(root / "products"),
        "--env--tracking_uri",
        f"sqlite:///{root / 'tracking' / 'mlflow.db'}",
        "--env--artifact_root",
        str(root / "tracking" / "artifacts"),
        *extra,
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return float("nan"), ""
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"build failed ({' '.join(extra)}):\n{proc.stdout[-2000:]}")
        return float("nan"), ""
    return elapsed, proc.stdout


def task_seconds(output: str) -> dict[str, float]:
    """Per-task seconds from ploomber's closing table."""
    if "Ran?" not in output:
        return {}
    table = output[output.rindex("Ran?") :]
    out = {}
    for line in table.splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 3 and re.match(r"^[\d.]+$", parts[2]):
            out[parts[0]] = float(parts[2])
    return out


def floor(root: Path, env: dict) -> float:
    """The pipeline's work as plain function calls in this process."""
    start = time.perf_counter()
    from tasks import evaluate as ev
    from tasks import io
    from tasks.features import fit_features, target_vector
    from tasks.ingest import ingest_table
    from tasks.lineage import lineage_tags
    from tasks.register import configure_tracking, log_build
    from tasks.schema import coerce_frame, load_schema
    from tasks.score import score_frame
    from tasks.split import split_data
    from tasks.train import assemble_model, tune_model
    from tasks.validate import check_frame, validate_frame

    schema = load_schema(env["schema_path"])
    raw, meta = ingest_table(
        env["data_path"], env["csv_sep"], env["sample"], env["seed"]
    )
    io.write_parquet(raw, root / "raw.parquet")
    check_frame(validate_frame(raw, schema))
    clean = coerce_frame(raw, schema)
    train, val, test = split_data(
        clean, schema.target, env["test_size"], env["val_size"], env["seed"]
    )
    pre = fit_features(train, schema)
    Xt, Xv = pre.transform(train), pre.transform(val)
    yt, yv, ytest = (target_vector(d, schema) for d in (train, val, test))
    families = {}
    for family in ("logistic", "xgboost", "lightgbm"):
        best, trials = tune_model(
            family,
            Xt,
            yt,
            Xv,
            yv,
            n_trials=env["n_trials"],
            seed=env["seed"],
            n_jobs=env["n_jobs"],
        )
        model = assemble_model(pre, best)
        p_val = model.predict_proba(val)[:, 1]
        families[family] = {
            "model": model,
            "trials": trials,
            "best_params": {},
            "val": ev.compute_metrics(yv, p_val),
            "test": ev.compute_metrics(ytest, model.predict_proba(test)[:, 1]),
            "p_val": p_val,
        }
    champ = ev.select_champion(families)
    threshold = ev.cost_threshold(
        yv, families[champ]["p_val"], env["cost_fp"], env["cost_fn"]
    )["threshold"]
    configure_tracking(
        f"sqlite:///{root / 'floor.db'}", str(root / "floor-art"), "floor"
    )
    log_build(
        model_name="floor",
        model=families[champ]["model"],
        schema=schema,
        families={
            f: {k: v for k, v in r.items() if k in ("val", "test", "trials")}
            for f, r in families.items()
        },
        champion_family=champ,
        X_test=test[schema.feature_names],
        y_test=ytest,
        threshold=threshold,
        params={},
        lineage=lineage_tags(meta["sha256"], "x"),
        margin=0.001,
    )
    champion = families[champ]["model"]
    scores = score_frame(champion, test, schema, threshold, "1")
    io.write_parquet(scores, root / "scores.parquet")
    # explain, model card (bootstrap intervals) and monitor, as the DAG does
    from tasks.explain import explain_frame, global_importance
    from tasks.model_card import bootstrap_metrics
    from tasks.monitor import monitor, render_report

    rows = test.sample(n=min(env["explain_rows"], len(test)), random_state=env["seed"])
    global_importance(explain_frame(champion, rows[schema.feature_names]))
    bootstrap_metrics(ytest, scores["score"].to_numpy(), seed=env["seed"])
    feats = schema.feature_names
    verdict = monitor(
        train,
        test,
        schema,
        champion.predict_proba(train[feats])[:, 1],
        scores["score"].to_numpy(),
        env["monitor_thresholds"],
    )
    io.write_text(render_report(verdict), root / "monitor.html")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-trials", type=int, help="override env.yaml n_trials")
    parser.add_argument("--sample", type=int, help="override env.yaml sample")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from tasks.config import load_env

    overrides = {}
    if args.n_trials:
        overrides["n_trials"] = str(args.n_trials)
    if args.sample:
        overrides["sample"] = str(args.sample)
    extra = [a for k, v in overrides.items() for a in (f"--env--{k}", v)]
    env = load_env(REPO / "env.yaml", overrides=overrides)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full, out = ploomber_build(tmp / "papermill", "--force", *extra)
        rows.append(("ploomber build (papermill), full", full, task_seconds(out)))
        noop, out = ploomber_build(tmp / "papermill", *extra)
        rows.append(("ploomber build, nothing changed", noop, {}))
        eng, out = ploomber_build(
            tmp / "engine", "--force", "--env--executor", "ploomber-engine", *extra
        )
        rows.append(("ploomber build (ploomber-engine), full", eng, task_seconds(out)))
        (tmp / "floor").mkdir()
        base = floor(tmp / "floor", env)
        rows.append(("plain Python, same tasks/ calls (floor)", base, {}))

    print(
        f"\nbuild benchmark: sample={env['sample'] or 'all'} "
        f"n_trials={env['n_trials']} cores={os.cpu_count()}\n"
    )
    print(f"{'run':<42} {'seconds':>8} {'x floor':>8}")
    for name, seconds, _ in rows:
        print(f"{name:<42} {seconds:>8.1f} {seconds / base:>8.2f}")
    print("\nper-task seconds (papermill vs ploomber-engine):")
    pm, en = rows[0][2], rows[2][2]
    for task in pm:
        print(f"  {task:<16} {pm[task]:>7.1f} {en.get(task, float('nan')):>7.1f}")


if __name__ == "__main__":
    main()
