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
# # Explain
# Why does the registered candidate score a client the way it does? Per-feature
# contributions to the log-odds: TreeSHAP from XGBoost's or LightGBM's own
# `pred_contribs`, exact `coef * x` for the logistic model (`tasks.explain`).
# For every row, base value + contributions = the model's raw score; the check
# below fails the stage if they do not add up. Plots are logged to the build's
# MLflow run under `explain/`.

# %% tags=["parameters"]
upstream = ["split", "evaluate", "register"]
product = None
# files whose content Ploomber tracks for this stage (see pipeline.yaml)
resources_ = None
schema_path = "../config/schema.yaml"
tracking_uri = "sqlite:///../tracking/mlflow.db"
explain_rows = 2000
seed = 42

# %%
# inputs whose content decides whether this stage is up to date (Ploomber
# hashes them; pipeline.yaml lists them under resources_)
sorted(resources_ or {})

# %%
import mlflow
import pandas as pd

from tasks import figures, io
from tasks.explain import explain_frame, global_importance
from tasks.schema import load_schema

schema = load_schema(schema_path)
metrics = io.read_json(upstream["evaluate"]["metrics"])
registered = io.read_json(upstream["register"]["result"])
model = io.load_model(metrics["families"][registered["family"]]["model_path"])
test = io.read_parquet(upstream["split"]["test"])
rows = test.sample(n=min(explain_rows, len(test)), random_state=seed)
X = rows[schema.feature_names]
explanation = explain_frame(model, X)
gap = explanation.check_additivity()
print(
    f"{registered['family']} v{registered['model_version']}: {len(X)} test rows "
    f"explained; largest |base + contributions - raw score| = {gap:.2e}"
)

# %% [markdown]
# ## Global importance (mean |contribution|)

# %%
importance = global_importance(explanation)
io.write_text(importance.rename("mean_abs_contribution").to_csv(), product["importance"])
fig = figures.plot_importance(importance)
io.save_figure(fig, product["importance_png"])

# %%
fig = figures.plot_beeswarm(explanation, X)
io.save_figure(fig, product["beeswarm_png"])

# %% [markdown]
# ## Dependence on the three most important features

# %%
fig = figures.plot_dependence(explanation, X, list(importance.index[:3]))
io.save_figure(fig, product["dependence_png"])

# %% [markdown]
# ## Worked examples: the highest, a middle and the lowest score

# %%
by_score = explanation.probability.sort_values()
examples = [by_score.index[-1], by_score.index[len(by_score) // 2], by_score.index[0]]
for row in examples:
    fig = figures.plot_row(explanation, row)
pd.concat(
    [X.loc[examples].T, explanation.contributions.loc[examples].T.add_prefix("contrib ")],
    axis=1,
)

# %%
client = mlflow.MlflowClient(tracking_uri=tracking_uri)
for key in ("importance", "importance_png", "beeswarm_png", "dependence_png"):
    client.log_artifact(registered["run_id"], product[key], artifact_path="explain")
