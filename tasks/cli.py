"""``nbship``: the project's own commands, for what ``ploomber`` does not do.

Every subcommand has ``--help``. Project errors print as one ``error:`` line and
exit non-zero (2 configuration, 3 data, 4 model); tracebacks are not shown.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tasks.errors import ConfigError, NbshipError

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# our exception types, as they end a traceback (function tasks) or a papermill
# cell error (notebook tasks)
ERROR_LINE = re.compile(
    r"^(?:tasks\.errors\.)?(DataValidationError|DataError|ConfigError|ModelError"
    r"|NbshipError): (.*)$"
)
EXIT_CODES = {
    "ConfigError": 2,
    "DataError": 3,
    "DataValidationError": 3,
    "ModelError": 4,
    "NbshipError": 1,
}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _env_overrides(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key] = value
    return out


def add_set_option(
    parser: argparse.ArgumentParser,
    help: str = "override an env.yaml parameter (repeatable)",
) -> None:
    """The ``--set KEY=VALUE`` option every command shares (see _env_overrides)."""
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help=help)


MISSING_RESOURCE = re.compile(
    r"FileNotFoundError: Error reading params\.resources_ with key '(\w+)'\. "
    r"Expected value '(.*)' to be an existing file\."
)


def extract_error(output: str) -> tuple[str, str] | None:
    """The last project error in a build's output: (exception name, message)."""
    lines = ANSI.sub("", output).splitlines()
    found = None
    for line in lines:
        # Ploomber hashes tracked files before any task runs
        m = MISSING_RESOURCE.search(line)
        if m:
            what = "data file" if m.group(1) == "data" else f"file ({m.group(1)})"
            found = (
                "DataError" if m.group(1) == "data" else "ConfigError",
                f"{what} {m.group(2)!r} does not exist",
            )
    for i, line in enumerate(lines):
        m = ERROR_LINE.match(line.strip())
        if m:
            msg = [m.group(2)]
            for nxt in lines[i + 1 : i + 8]:
                nxt = nxt.rstrip()
                if not nxt or nxt.startswith(("ploomber.", "Traceback", "The above")):
                    break
                msg.append(nxt)
            found = (m.group(1), "\n".join(msg))
    return found


# ---------------------------------------------------------------- build
def cmd_build(args: argparse.Namespace) -> int:
    """Run ``ploomber build`` with live output, then summarise."""
    ploomber = Path(sys.executable).with_name("ploomber")
    cmd = [str(ploomber) if ploomber.exists() else "ploomber", "build", *args.ploomber]
    _say(f"$ {' '.join(cmd)}")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    captured = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        captured.append(line)
    code = proc.wait()
    if code != 0:
        err = extract_error("".join(captured))
        if err:
            name, message = err
            _say(f"\nerror: build stopped ({name}): {message}")
            _say(
                "Nothing downstream ran: earlier models, products and the "
                "registry are unchanged."
            )
            return EXIT_CODES.get(name, 1)
        _say("\nerror: build failed; see the task output above.")
        return code
    env = _load_env_quietly()
    if env:
        index = Path(env["products"]) / "index.html"
        if index.exists():
            _say(f"\nreport: {index}")
        _say(f"tracking: {env['tracking_uri']} (browse with `make mlflow-ui`)")
    return 0


def _load_env_quietly() -> dict[str, Any] | None:
    from tasks.config import load_env

    try:
        return load_env()
    except NbshipError:
        return None


# ---------------------------------------------------------------- infer-schema
def cmd_infer_schema(args: argparse.Namespace) -> int:
    import yaml

    from tasks.io import read_table
    from tasks.schema import infer_schema, schema_from_dict

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigError(f"{out} exists; pass --force to overwrite it")
    df = read_table(args.data, csv_sep=args.sep)
    spec = infer_schema(
        df,
        target=args.target,
        positive_label=args.positive_label,
        drop=args.drop,
        missing_values=args.missing_values,
        max_categories=args.max_categories,
    )
    schema_from_dict(spec, source="inferred schema")
    header = (
        f"# Drafted by `nbship infer-schema` from {args.data} ({len(df)} rows).\n"
        "# Review it: bounds are the observed min/max, categories the observed "
        "values.\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + yaml.safe_dump(spec, sort_keys=False, width=88))
    _say(f"wrote {out}: {len(spec['columns'])} columns, target {args.target!r}")
    _say(
        f"next: review it, then build with --env--schema_path {out} "
        f"--env--data_path {args.data}"
    )
    return 0


# ---------------------------------------------------------------- models
def cmd_models(args: argparse.Namespace) -> int:
    import mlflow

    from tasks.config import load_env

    env = load_env(overrides=_env_overrides(args.set))
    mlflow.set_tracking_uri(env["tracking_uri"])
    client = mlflow.MlflowClient()
    name = env["model_name"]
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        _say(f"no versions of {name!r} in {env['tracking_uri']}; run `make build`")
        return 1
    aliases = client.get_registered_model(name).aliases
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    print(
        f"{'version':>7}  {'aliases':<20} {'family':<9} {'test_roc_auc':>12}  "
        "promoted  built_at"
    )
    for mv in sorted(versions, key=lambda v: int(v.version)):
        t = mv.tags
        print(
            f"{mv.version:>7}  {','.join(by_version.get(str(mv.version), [])):<20} "
            f"{t.get('family', ''):<9} {t.get('test_roc_auc', ''):>12}  "
            f"{t.get('promoted', ''):<8}  {t.get('lineage.built_at', '')}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbship",
        description="Project commands next to `ploomber build`. Parameters come from "
        "env.yaml (or $PLOOMBER_ENV_FILENAME); override one with --set KEY=VALUE.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "build",
        help="run `ploomber build` and summarise (report path, clear error line)",
        description="Run `ploomber build` with its live output. Extra arguments go "
        "to ploomber, e.g. `nbship build --force` or "
        "`nbship build --env--data_path data/my.csv`.",
    )
    p.add_argument(
        "ploomber",
        nargs=argparse.REMAINDER,
        help="arguments passed to `ploomber build`",
    )
    p.set_defaults(func=cmd_build)

    p = sub.add_parser(
        "infer-schema",
        help="draft a schema YAML from a table, for you to review",
        description="Infer column types, bounds and categories from a CSV or "
        "Parquet file and write a schema file to review before building on it.",
    )
    p.add_argument("data", help="CSV or Parquet file")
    p.add_argument("--target", required=True, help="binary target column")
    p.add_argument(
        "--positive-label",
        help="target value of the positive class "
        "(default: the larger of the two values, sorted as text)",
    )
    p.add_argument(
        "--drop",
        nargs="*",
        default=[],
        help="columns not to use as features (e.g. leaking ones)",
    )
    p.add_argument(
        "--missing-values",
        nargs="*",
        default=[],
        help="tokens that mean missing, e.g. unknown NA",
    )
    p.add_argument("--sep", default=",", help="CSV separator (default ,)")
    p.add_argument(
        "--max-categories",
        type=int,
        default=50,
        help="list categories of text columns with at most this many "
        "values (default 50)",
    )
    p.add_argument(
        "--out",
        default="config/schema.yaml",
        help="output file (default config/schema.yaml)",
    )
    p.add_argument("--force", action="store_true", help="overwrite --out")
    p.set_defaults(func=cmd_infer_schema)

    p = sub.add_parser(
        "models",
        help="list registered versions and their aliases",
        description="List the registered model's versions, aliases, "
        "family, test ROC AUC and promotion decision.",
    )
    add_set_option(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "monitor",
        help="compare new data and its scores with the training reference "
        "(exit 10 on alert)",
        description="Read CURRENT (CSV or Parquet), check it against the schema "
        "(rows breaking a rule are counted, not fatal), score it with the champion "
        "and compare it with the reference: per-feature drift (PSI; KS or chi-square "
        "with a multiple-testing correction), missing and unseen values, score "
        "drift and, when CURRENT has the target, ROC AUC against the model's test "
        "AUC. Writes verdict.json and report.html. Thresholds: env.yaml "
        "`monitor_thresholds` (see docs/monitoring.md).",
        epilog="exit codes: 0 ok or warn (the warning is printed), 10 alert, "
        "2 configuration error, 3 bad data (unreadable, empty, a feature column "
        "missing), 4 no model to score with.",
    )
    p.add_argument("current", help="the new batch: CSV (env csv_sep) or Parquet")
    p.add_argument(
        "--reference",
        help="training reference table (default: PRODUCTS/split/train.parquet)",
    )
    p.add_argument(
        "--out-dir",
        help="where verdict.json and report.html go (default: PRODUCTS/monitor)",
    )
    add_set_option(p)
    p.set_defaults(func=cmd_monitor)

    # retrain, promote, rollback, export-airflow: declared in tasks/schedule.py
    from tasks.schedule import add_commands as add_schedule_commands

    add_schedule_commands(sub)

    # serve, score: the champion in real time and in batch (docs/serving.md)
    p = sub.add_parser(
        "serve",
        help="serve the champion over HTTP (predict, explain, health, metrics)",
        description="Run the scoring API (FastAPI + Uvicorn) on models:/NAME@ALIAS. "
        "Set $NBSHIP_API_KEY to require that key in the X-API-Key header.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1, this machine only)",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--alias", default="champion", help="registry alias to serve")
    p.add_argument("--version", help="serve this model version instead of the alias")
    p.add_argument(
        "--poll-interval",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="check the alias every SECONDS and hot-swap when it moved "
        "(default 0: only on POST /reload)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=1 << 20,
        help="larger request bodies get 413 (default 1 MiB)",
    )
    p.add_argument(
        "--max-records",
        type=int,
        default=1000,
        help="most records per request (default 1000)",
    )
    p.add_argument(
        "--prediction-log",
        metavar="DIR",
        help="Parquet prediction log folder (default PRODUCTS/predictions)",
    )
    p.add_argument(
        "--no-prediction-log", action="store_true", help="do not log predictions"
    )
    p.add_argument(
        "--log-features",
        action="store_true",
        help="include feature values in the request log lines",
    )
    p.add_argument("--log-level", default="INFO", help="INFO (default) or WARNING")
    add_set_option(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "score",
        help="score a CSV or Parquet file with the champion, in chunks",
        description="Stream INPUT through the model chunk by chunk (flat memory), "
        "validate every chunk with the schema and write Parquet with row_id, "
        "score, label and model_version. Invalid rows go to a rejects file with "
        "the reason, unless --fail-fast.",
        epilog="exit codes: 0 done (rejected rows are reported), 2 configuration "
        "error, 3 unreadable input or an invalid row with --fail-fast, 4 no model.",
    )
    p.add_argument(
        "input", help="CSV (separator: --sep, default env csv_sep) or Parquet file"
    )
    p.add_argument("--out", required=True, help="output Parquet file")
    p.add_argument("--version", help="model version (default: the alias)")
    p.add_argument(
        "--alias", default="champion", help="registry alias (default champion)"
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=100_000,
        help="rows per chunk (default 100000)",
    )
    p.add_argument(
        "--rejects",
        help="file for invalid rows, .parquet or .csv "
        "(default OUT with .rejects.parquet)",
    )
    p.add_argument(
        "--fail-fast",
        action="store_true",
        help="stop at the first invalid row instead of setting it aside",
    )
    p.add_argument("--sep", help="CSV separator (default: env.yaml csv_sep)")
    add_set_option(p)
    p.set_defaults(func=cmd_score)
    return parser


# ---------------------------------------------------------------- serve, score
def cmd_serve(args: argparse.Namespace) -> int:
    """Run the scoring API until interrupted."""
    from tasks.api import API_KEY_ENV, ServeSettings, serve
    from tasks.config import load_env
    from tasks.schema import load_schema

    env = load_env(overrides=_env_overrides(args.set))
    log_dir = None
    if not args.no_prediction_log:
        log_dir = args.prediction_log or str(Path(env["products"]) / "predictions")
    settings = ServeSettings(
        tracking_uri=env["tracking_uri"],
        model_name=env["model_name"],
        schema=load_schema(env["schema_path"]),
        alias=args.alias,
        model_version=args.version,
        api_key=os.environ.get(API_KEY_ENV) or None,
        max_body_bytes=args.max_body_bytes,
        max_records=args.max_records,
        poll_interval=args.poll_interval,
        prediction_log_dir=log_dir,
        log_features=args.log_features,
    )
    serve(settings, host=args.host, port=args.port, log_level=args.log_level.upper())
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score a file in chunks with a registered model; report rows and rejects."""
    import time

    from tasks.config import load_env
    from tasks.schema import load_schema
    from tasks.score import (
        default_rejects_path,
        load_registered_model,
        resolve_model_uri,
        score_file,
    )

    env = load_env(overrides=_env_overrides(args.set))
    schema = load_schema(env["schema_path"])
    uri = resolve_model_uri(env["model_name"], args.alias, args.version)
    model, info = load_registered_model(env["tracking_uri"], uri)
    rejects = None
    if not args.fail_fast:
        rejects = args.rejects or default_rejects_path(args.out)
    _say(
        f"scoring {args.input} with {info['model_name']} v{info['model_version']} "
        f"(chunks of {args.chunk_size:,} rows)"
    )
    last = [0.0]

    def progress(result, total) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0 and not (total and result.rows >= total):
            return
        last[0] = now
        done = f"{result.rows:,}" + (
            f"/{total:,} ({result.rows / total:.0%})" if total else ""
        )
        _say(
            f"  {done} rows, {result.rejected:,} rejected, "
            f"{result.rows / max(result.seconds, 1e-9):,.0f} rows/s"
        )

    result = score_file(
        model,
        args.input,
        args.out,
        schema,
        info["threshold"],
        info["model_version"],
        chunk_size=args.chunk_size,
        rejects=rejects,
        fail_fast=args.fail_fast,
        csv_sep=args.sep or env.get("csv_sep", ","),
        progress=progress,
    )
    _say(
        f"wrote {result.out}: {result.scored:,} of {result.rows:,} rows scored in "
        f"{result.seconds:.1f} s"
    )
    if result.rejected:
        _say(
            f"warning: {result.rejected:,} invalid row(s) set aside in "
            f"{result.rejects}; most common reasons:"
        )
        for reason, n in sorted(result.reasons.items(), key=lambda kv: -kv[1])[:5]:
            _say(f"  {n:,} x {reason}")
    return 0


# ---------------------------------------------------------------- monitor
def cmd_monitor(args: argparse.Namespace) -> int:
    """Score CURRENT and the reference with the champion, compare, write, exit."""
    from tasks.config import load_env
    from tasks.errors import DataError
    from tasks.io import read_table, write_json, write_text
    from tasks.monitor import (
        EXIT_CODES,
        check_columns,
        monitor_model,
        render_report,
        resolve_thresholds,
    )
    from tasks.schema import load_schema
    from tasks.score import load_registered_model, resolve_model_uri

    env = load_env(overrides=_env_overrides(args.set))
    thresholds = resolve_thresholds(env.get("monitor_thresholds"))
    schema = load_schema(env["schema_path"])
    products = Path(env["products"])
    ref_path = Path(args.reference or products / "split" / "train.parquet")
    if args.reference is None and not ref_path.is_file():
        raise DataError(
            f"no training reference at {ref_path}; run `make build` or pass --reference"
        )
    sep = env.get("csv_sep", ",")
    current = read_table(args.current, csv_sep=sep)
    reference = read_table(ref_path, csv_sep=sep)
    check_columns(current, schema, f"current ({args.current})")
    check_columns(reference, schema, f"reference ({ref_path})")
    model, info = load_registered_model(
        env["tracking_uri"], resolve_model_uri(env["model_name"])
    )
    verdict = monitor_model(
        reference,
        current,
        schema,
        model,
        info,
        thresholds,
        inputs={"current": str(args.current), "reference": str(ref_path)},
    )
    out_dir = Path(args.out_dir or products / "monitor")
    write_json(verdict, out_dir / "verdict.json")
    write_text(render_report(verdict), out_dir / "report.html")
    status = verdict["status"]
    print(
        f"monitor: {status.upper()} ({verdict['rows']['current']} rows vs "
        f"{verdict['rows']['reference']} reference rows, model "
        f"v{info['model_version']})"
    )
    for reason in verdict["reasons"]:
        print(f"  - {reason}")
    _say(f"verdict: {out_dir / 'verdict.json'}")
    _say(f"report: {out_dir / 'report.html'}")
    return EXIT_CODES[status]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("PLOOMBER_STATS_ENABLED", "false")
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if argv[:1] == ["build"] and not {"-h", "--help"} & set(argv[1:]):
        # everything after `build` belongs to ploomber, options included
        args = argparse.Namespace(func=cmd_build, ploomber=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NbshipError as e:
        _say(f"error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
