"""Register: log the build to MLflow, register the candidate, gate the champion alias.

Each call of :func:`log_build` is one build: a parent run carrying lineage tags,
the environment's parameters and the candidate model; one child run per model
family with its search trials; a new registered model version; and the
``champion`` alias moved only when the candidate beats the current champion on the
same test data by ``margin``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.errors import ModelError
from tasks.schema import Schema

log = logging.getLogger(__name__)

CHAMPION = "champion"
TASKS_DIR = Path(__file__).resolve().parent
# what a model artifact needs to be loaded elsewhere; versions are the installed ones
RUNTIME_PACKAGES = (
    "mlflow",
    "scikit-learn",
    "pandas",
    "numpy",
    "scipy",
    "xgboost",
    "lightgbm",
    "pyyaml",
)


def configure_tracking(tracking_uri: str, artifact_root: str, experiment: str) -> str:
    """Point MLflow at the store and make sure the experiment exists.

    Args:
        tracking_uri: e.g. ``sqlite:///tracking/mlflow.db`` or ``http://host:5000``.
        artifact_root: folder for artifacts of a newly created experiment (ignored
            when the experiment exists or the server manages artifacts).
        experiment: experiment name.

    Returns:
        The experiment id.
    """
    import mlflow

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        location = None
        if artifact_root and "://" not in artifact_root:
            Path(artifact_root).mkdir(parents=True, exist_ok=True)
            location = Path(artifact_root).resolve().as_uri()
        elif artifact_root:
            location = artifact_root
        exp_id = client.create_experiment(experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def model_signature(schema: Schema):
    """The MLflow signature, derived from the declared schema.

    Inputs: one column per feature (``double`` for numeric, ``string`` for
    category; optional where the schema allows missing values). Output: the two
    class probabilities.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, TensorSpec
    from mlflow.types import Schema as MlflowSchema

    inputs = MlflowSchema(
        [
            ColSpec(
                "double" if c.is_numeric else "string",
                c.name,
                required=not c.nullable,
            )
            for c in schema.features
        ]
    )
    outputs = MlflowSchema([TensorSpec(np.dtype("float64"), (-1, 2), "probabilities")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def pip_requirements() -> list[str]:
    reqs = []
    for name in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


def current_champion(model_name: str, alias: str = CHAMPION):
    """The model version holding ``alias``, or ``None`` (no model / no alias yet)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def gate(candidate: float, champion: float | None, margin: float) -> tuple[bool, str]:
    """Promote when there is no champion or the candidate beats it by ``margin``."""
    if champion is None:
        return True, "no current champion"
    if candidate >= champion + margin:
        return True, (
            f"candidate {candidate:.4f} >= champion {champion:.4f} + margin {margin}"
        )
    return False, (
        f"candidate {candidate:.4f} < champion {champion:.4f} + margin {margin}"
    )


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = str(v)[:500]
    return out


def log_build(
    *,
    model_name: str,
    model,
    schema: Schema,
    families: dict[str, dict[str, Any]],
    champion_family: str,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    threshold: float,
    params: dict[str, Any],
    lineage: dict[str, str],
    margin: float,
    metric: str = "roc_auc",
) -> dict[str, Any]:
    """Log one build, register the candidate and apply the promotion gate.

    Args:
        model_name: registered model name.
        model: the fitted candidate (preprocessing + estimator).
        schema: declared schema (for the signature).
        families: ``{family: {"val": metrics, "test": metrics, "trials": DataFrame,
            "best_params": dict}}`` from the train and evaluate stages.
        champion_family: the family chosen on validation.
        X_test, y_test: the held-out test features (model input) and 0/1 target;
            the current champion is scored on exactly these rows.
        threshold: decision threshold chosen on validation (logged with the model).
        params: the build's parameters (logged flattened).
        lineage: ``lineage.*`` tags.
        margin: how much better (in ``metric``) the candidate must be.
        metric: ``roc_auc`` or ``pr_auc``.

    Returns:
        ``{"run_id", "model_version", "model_uri", "promoted", "reason",
        "candidate_metric", "champion_metric", "previous_champion_version", ...}``.
    """
    import mlflow
    from sklearn.metrics import average_precision_score, roc_auc_score

    score_fn = {"roc_auc": roc_auc_score, "pr_auc": average_precision_score}[metric]
    client = mlflow.MlflowClient()
    started = datetime.now(UTC)
    run_name = f"build-{started:%Y%m%d-%H%M%S}"

    previous = current_champion(model_name)
    previous_version = None if previous is None else str(previous.version)
    champion_metric = None
    if previous is not None:
        try:
            champ_model = mlflow.sklearn.load_model(f"models:/{model_name}@{CHAMPION}")
            champ_proba = champ_model.predict_proba(X_test)[:, 1]
            champion_metric = float(score_fn(y_test, champ_proba))
        except Exception as e:  # a champion that cannot score this data is not kept
            raise ModelError(
                f"current champion {model_name} v{previous.version} could not score "
                f"this build's test data ({type(e).__name__}: {e}); the alias was "
                "left where it is. Check that the schema did not change, or promote "
                "manually."
            ) from e
    candidate_metric = float(score_fn(y_test, model.predict_proba(X_test)[:, 1]))
    promoted, reason = gate(candidate_metric, champion_metric, margin)

    with mlflow.start_run(run_name=run_name) as parent:
        mlflow.set_tags(
            {
                **lineage,
                "nbship.kind": "build",
                "nbship.champion_family": champion_family,
            }
        )
        mlflow.log_params(_flatten(params))
        for family, res in families.items():
            with mlflow.start_run(run_name=family, nested=True):
                mlflow.set_tags(
                    {
                        "nbship.kind": "family",
                        "nbship.family": family,
                        "lineage.data_sha256": lineage.get("lineage.data_sha256", ""),
                    }
                )
                mlflow.log_params(_flatten(res.get("best_params", {}), "best."))
                trials = res.get("trials")
                if trials is not None:
                    for _, row in trials.iterrows():
                        mlflow.log_metric(
                            "trial_val_roc_auc",
                            row["val_roc_auc"],
                            step=int(row["trial"]),
                        )
                        mlflow.log_metric(
                            "trial_val_log_loss",
                            row["val_log_loss"],
                            step=int(row["trial"]),
                        )
                    mlflow.log_table(trials, artifact_file="trials.json")
                mlflow.log_metrics({f"val_{k}": v for k, v in res["val"].items()})
                mlflow.log_metrics({f"test_{k}": v for k, v in res["test"].items()})
        champ = families[champion_family]
        mlflow.log_metrics({f"val_{k}": v for k, v in champ["val"].items()})
        mlflow.log_metrics({f"test_{k}": v for k, v in champ["test"].items()})
        mlflow.log_metric("threshold", threshold)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=model_signature(schema),
            input_example=X_test.head(3),
            pyfunc_predict_fn="predict_proba",
            # skops (MLflow's default) refuses the project's own transformer classes
            serialization_format="cloudpickle",
            code_paths=[str(TASKS_DIR)],
            pip_requirements=pip_requirements(),
            registered_model_name=model_name,
        )
        version = str(info.registered_model_version)
        mlflow.set_tags(
            {
                "nbship.model_version": version,
                "nbship.promoted": str(promoted).lower(),
                "nbship.gate": reason,
            }
        )
        run_id = parent.info.run_id

    version_tags = {
        **lineage,
        "family": champion_family,
        "threshold": repr(float(threshold)),
        "gate": reason,
        "promoted": str(promoted).lower(),
        f"test_{metric}": f"{candidate_metric:.6f}",
        "build_run_id": run_id,
    }
    for key, value in version_tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    if promoted:
        client.set_registered_model_alias(model_name, CHAMPION, version)
        if previous is not None:
            client.set_model_version_tag(
                model_name, version, "previous_champion", previous_version
            )
        log.info("promoted %s v%s to @%s (%s)", model_name, version, CHAMPION, reason)
    else:
        log.info(
            "kept %s v%s as @%s (%s)", model_name, previous_version, CHAMPION, reason
        )
    return {
        "run_id": run_id,
        "run_name": run_name,
        "model_name": model_name,
        "model_version": version,
        "model_uri": f"models:/{model_name}/{version}",
        "promoted": promoted,
        "reason": reason,
        "metric": metric,
        "candidate_metric": candidate_metric,
        "champion_metric": champion_metric,
        "previous_champion_version": previous_version,
        "champion_version": version if promoted else previous_version,
        "family": champion_family,
        "threshold": float(threshold),
    }
