"""Pointing the pipeline at another binary-classification table takes configuration
only: draft a schema with `nbship infer-schema`, then build with `--env--` options.

The table is synthetic (a churn-like CSV with other columns, a comma separator and a
0/1 integer target) so the test needs no download.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_build

pytestmark = pytest.mark.slow


def churn_table(n: int = 3000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    charges = np.round(rng.normal(60, 20, n).clip(5, 200), 2)
    tickets = rng.poisson(1.2, n)
    logit = -1.0 - tenure / 30 + tickets * 0.6 + np.where(plan == "basic", 0.7, -0.3)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    region = rng.choice(["north", "south", "NA"], n)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "tenure_months": tenure,
            "plan": plan,
            "monthly_charges": charges,
            "support_tickets": tickets,
            "region": region,
            "churned": churned,
        }
    )


def test_another_table_builds_with_configuration_only(tmp_path):
    data = tmp_path / "churn.csv"
    churn_table().to_csv(data, index=False)
    build = make_build(tmp_path / "build")
    schema = tmp_path / "churn-schema.yaml"

    drafted = build.nbship(
        "infer-schema",
        str(data),
        "--target",
        "churned",
        "--positive-label",
        "1",
        "--drop",
        "customer_id",
        "--missing-values",
        "NA",
        "--out",
        str(schema),
    )
    assert drafted.returncode == 0, drafted.stderr
    assert "region" in schema.read_text() and "nullable: true" in schema.read_text()

    result = build.ploomber(
        "build",
        data_path=str(data),
        csv_sep=",",
        schema_path=str(schema),
        sample="0",
        model_name="churn-test",
        experiment="churn-test",
        slice_columns="['plan']",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    metrics = json.loads((build.products / "evaluate/metrics.json").read_text())
    assert {s["column"] for s in metrics["slices"]} == {"plan"}
    # tenure, tickets and plan drive churn: every family must find it
    for family, res in metrics["families"].items():
        assert res["test"]["roc_auc"] > 0.7, family
    mlflow.set_tracking_uri(build.tracking_uri)
    champion = mlflow.MlflowClient().get_model_version_by_alias(
        "churn-test", "champion"
    )
    assert champion.tags["lineage.data_source"] == str(data)
    model = mlflow.sklearn.load_model("models:/churn-test@champion")
    coerce = model.named_steps["preprocess"].named_steps["coerce"]
    assert "customer_id" not in coerce.get_feature_names_out()
    scores = pd.read_parquet(build.products / "score/scores.parquet")
    assert set(scores["label"]) <= {"0", "1"}
