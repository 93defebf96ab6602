"""Score: apply a registered model to a table, the same way everywhere."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tasks.errors import ModelError
from tasks.schema import Schema


def resolve_model_uri(model_name: str, alias: str | None = "champion",
                      version: str | int | None = None) -> str:
    """``models:/NAME/VERSION`` when a version is given, else ``models:/NAME@ALIAS``."""
    if version is not None:
        return f"models:/{model_name}/{version}"
    return f"models:/{model_name}@{alias}"


def load_registered_model(tracking_uri: str, model_uri: str) -> tuple[Any, dict]:
    """Load a registered model's scikit-learn pipeline and its registry facts.

    Returns:
        (model, info) where info holds ``model_name``, ``model_version``,
        ``run_id``, ``threshold`` and the version's tags.

    Raises:
        ModelError: the model, version or alias does not exist or cannot load.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient()
    try:
        name, ref = model_uri.removeprefix("models:/").split("@", 1) if "@" in \
            model_uri else model_uri.removeprefix("models:/").split("/", 1)
        mv = (client.get_model_version_by_alias(name, ref) if "@" in model_uri
              else client.get_model_version(name, ref))
        model = mlflow.sklearn.load_model(model_uri)
    except (MlflowException, ValueError, OSError) as e:
        raise ModelError(
            f"cannot load {model_uri!r} from {tracking_uri!r}: "
            f"{str(e).splitlines()[0]}. Run `make build` to train and register one."
        ) from e
    tags = dict(mv.tags or {})
    info = {
        "model_name": name,
        "model_version": str(mv.version),
        "run_id": mv.run_id,
        "threshold": float(tags.get("threshold", 0.5)),
        "tags": tags,
    }
    return model, info


def score_frame(
    model, df: pd.DataFrame, schema: Schema, threshold: float, model_version: str,
    row_ids: pd.Series | None = None,
) -> pd.DataFrame:
    """Probabilities and labels for the rows of ``df``.

    Args:
        model: fitted pipeline (preprocessing + estimator).
        df: rows with the schema's feature columns (other columns are ignored).
        schema: declared schema.
        threshold: label is positive when the probability is at least this.
        model_version: written on every row.
        row_ids: identifiers to keep (default: 0..n-1).

    Returns:
        DataFrame with ``row_id``, ``score``, ``label`` (the schema's labels) and
        ``model_version``.
    """
    proba = model.predict_proba(df[schema.feature_names])[:, 1]
    neg, pos = schema.labels
    return pd.DataFrame(
        {
            "row_id": np.arange(len(df)) if row_ids is None else np.asarray(row_ids),
            "score": proba,
            "label": np.where(proba >= threshold, pos, neg),
            "model_version": str(model_version),
        }
    )
