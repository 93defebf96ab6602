"""Ploomber function tasks: the pipeline's pure data-plumbing stages.

Each function reads its upstream products, calls the pure stage functions and
writes its products through :mod:`tasks.io`. Notebook stages live in
``notebooks/``. Ploomber passes ``resources_`` (the tracked source files, see
``pipeline.yaml``) to every task; these functions do not use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks import io
from tasks.ingest import ingest_table
from tasks.schema import load_schema
from tasks.split import split_data


def ingest(
    product: Any,
    data_path: str,
    csv_sep: str,
    sample: int,
    seed: int,
    resources_: Any = None,
) -> None:
    """Source table -> ``product['data']`` (Parquet) + ``product['meta']`` (JSON)."""
    df, meta = ingest_table(data_path, csv_sep=csv_sep, sample=sample, seed=seed)
    io.write_parquet(df, product["data"])
    io.write_json(meta, product["meta"])


def split(
    upstream: Any,
    product: Any,
    schema_path: str,
    test_size: float,
    val_size: float,
    seed: int,
    resources_: Any = None,
) -> None:
    """Validated table -> stratified train / val / test Parquet files."""
    schema = load_schema(schema_path)
    df = io.read_parquet(upstream["validate"]["data"])
    train, val, test = split_data(
        df, schema.target, test_size=test_size, val_size=val_size, seed=seed
    )
    for name, part in (("train", train), ("val", val), ("test", test)):
        io.write_parquet(part, product[name])
    io.write_json(
        {
            "seed": seed,
            "rows": {"train": len(train), "val": len(val), "test": len(test)},
            "positive_rate": {
                name: float((part[schema.target] == schema.positive_label).mean())
                for name, part in (("train", train), ("val", val), ("test", test))
            },
        },
        product["meta"],
    )


def score(
    upstream: Any,
    product: Any,
    schema_path: str,
    tracking_uri: str,
    model_name: str,
    resources_: Any = None,
) -> None:
    """Batch-score the test split with the registered ``champion``.

    The same streaming code as ``nbship score`` (:func:`tasks.score.score_file`):
    chunked, every chunk validated. The test split was validated upstream, so an
    invalid row here is an error that stops the build.
    """
    from tasks.score import load_registered_model, resolve_model_uri, score_file

    schema = load_schema(schema_path)
    reg = io.read_json(upstream["register"]["result"])
    uri = resolve_model_uri(model_name, version=reg["champion_version"])
    model, info = load_registered_model(tracking_uri, uri)
    score_file(
        model,
        upstream["split"]["test"],
        product["data"],
        schema,
        info["threshold"],
        info["model_version"],
        rejects=None,
    )


def report(upstream: Any, product: Any, products: str, resources_: Any = None) -> None:
    """Write the index page linking every executed notebook and the key results."""
    from tasks.report import render_index

    html = render_index(
        products_dir=Path(products),
        register=io.read_json(upstream["register"]["result"]),
        evaluation=io.read_json(upstream["evaluate"]["metrics"]),
        scores=io.read_parquet(upstream["score"]["data"]),
        model_card=Path(upstream["model-card"]["html"]),
        verdict=io.read_json(upstream["monitor"]["verdict"]),
        out_dir=Path(product).parent,
    )
    io.write_text(html, product)


def model_card(
    upstream: Any,
    product: Any,
    schema_path: str,
    tracking_uri: str,
    intended_use: str,
    limitations: list[str],
    seed: int,
    resources_: Any = None,
) -> None:
    """Model card of the registered candidate (Markdown + HTML), also in MLflow."""
    import mlflow
    import pandas as pd

    from tasks.evaluate import calibration_table
    from tasks.features import target_vector
    from tasks.model_card import bootstrap_metrics, render_model_card, to_html

    schema = load_schema(schema_path)
    evaluation = io.read_json(upstream["evaluate"]["metrics"])
    registered = io.read_json(upstream["register"]["result"])
    model = io.load_model(evaluation["families"][registered["family"]]["model_path"])
    test = io.read_parquet(upstream["split"]["test"])
    y, proba = target_vector(test, schema), model.predict_proba(test)[:, 1]
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    lineage = {
        k: v
        for k, v in client.get_run(registered["run_id"]).data.tags.items()
        if k.startswith("lineage.")
    }
    importance = pd.read_csv(upstream["explain"]["importance"], index_col=0).iloc[:, 0]
    markdown = render_model_card(
        schema=schema,
        register=registered,
        evaluation=evaluation,
        ci=bootstrap_metrics(y, proba, seed=seed),
        calibration=calibration_table(y, proba),
        importance=importance,
        source=io.read_json(upstream["ingest"]["meta"]),
        split=io.read_json(upstream["split"]["meta"]),
        lineage=lineage,
        intended_use=intended_use,
        limitations=list(limitations),
    )
    title = f"{registered['model_name']} v{registered['model_version']} model card"
    io.write_text(markdown, product["md"])
    io.write_text(to_html(markdown, title), product["html"])
    for key in ("md", "html"):
        client.log_artifact(
            registered["run_id"], product[key], artifact_path="model_card"
        )
    client.update_model_version(
        registered["model_name"], registered["model_version"], description=markdown
    )


def monitor(
    upstream: Any,
    product: Any,
    schema_path: str,
    tracking_uri: str,
    model_name: str,
    monitor_data: str,
    csv_sep: str,
    monitor_thresholds: dict[str, Any],
    resources_: Any = None,
) -> None:
    """Drift report of ``monitor_data`` (default: the test split) against train.

    A report, not a gate: an ``alert`` verdict does not fail the build (the
    ``nbship monitor`` command exits 10 for schedulers).
    """
    from tasks.io import read_table
    from tasks.monitor import check_columns, monitor_model, render_report
    from tasks.score import load_registered_model, resolve_model_uri

    schema = load_schema(schema_path)
    reference = io.read_parquet(upstream["split"]["train"])
    if monitor_data:
        current = read_table(monitor_data, csv_sep=csv_sep)
    else:
        current = io.read_parquet(upstream["split"]["test"])
    check_columns(current, schema, f"monitor_data ({monitor_data or 'test split'})")
    registered = io.read_json(upstream["register"]["result"])
    model, info = load_registered_model(
        tracking_uri,
        resolve_model_uri(model_name, version=registered["champion_version"]),
    )
    verdict = monitor_model(
        reference,
        current,
        schema,
        model,
        info,
        monitor_thresholds,
        inputs={"current": monitor_data or "test split", "reference": "train split"},
    )
    io.write_json(verdict, product["verdict"])
    io.write_text(render_report(verdict), product["html"])
