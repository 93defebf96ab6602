# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: nbship
#     language: python
#     name: nbship
# ---

# %% [markdown]
# # Register
# Logs this build to MLflow (one parent run with lineage tags and parameters, one
# child run per model family with every search trial), registers the candidate
# (preprocessing + estimator, with signature and input example) as a new model
# version, and moves the `champion` alias only if the candidate beats the current
# champion on this build's test rows by `promotion_margin`. The previous champion
# version stays in the registry.

# %% tags=["parameters"]
upstream = ["ingest", "split", "evaluate"]
product = None
# files whose content Ploomber tracks for this stage (see pipeline.yaml)
resources_ = None
schema_path = "../config/schema.yaml"
project_dir = ".."
tracking_uri = "sqlite:///../tracking/mlflow.db"
artifact_root = "../tracking/artifacts"
experiment = "nbship"
model_name = "bank-marketing"
promotion_margin = 0.001
build_params = {}

# %%
# inputs whose content decides whether this stage is up to date (Ploomber
# hashes them; pipeline.yaml lists them under resources_)
sorted(resources_ or {})

# %%
import pandas as pd

from tasks import io
from tasks.features import target_vector
from tasks.lineage import lineage_tags
from tasks.register import configure_tracking, log_build
from tasks.schema import load_schema

schema = load_schema(schema_path)
source = io.read_json(upstream["ingest"]["meta"])
metrics = io.read_json(upstream["evaluate"]["metrics"])
test = io.read_parquet(upstream["split"]["test"])
champion = metrics["champion"]
families = {
    family: {
        "val": res["val"],
        "test": res["test"],
        "best_params": res["best_params"],
        "trials": pd.read_csv(res["trials_path"]),
    }
    for family, res in metrics["families"].items()
}
lineage = lineage_tags(source["sha256"], source["source"], project_dir)
configure_tracking(tracking_uri, artifact_root, experiment)
result = log_build(
    model_name=model_name,
    model=io.load_model(metrics["families"][champion]["model_path"]),
    schema=schema,
    families=families,
    champion_family=champion,
    X_test=test[schema.feature_names],
    y_test=target_vector(test, schema),
    threshold=metrics["threshold"],
    params=dict(build_params),
    lineage=lineage,
    margin=promotion_margin,
)
io.write_json(result, product["result"])
pd.Series(result)

# %% [markdown]
# ## Lineage recorded on the run and the model version

# %%
pd.Series(lineage).to_frame("value")
