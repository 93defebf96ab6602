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
# # Train one model family
# A bounded random search (`n_trials` fitted models) over the family's
# hyper-parameters, each trial scored by ROC AUC on the validation split; boosted
# models stop early on it. The best trial is kept with the fitted preprocessing as
# one pipeline. Ploomber runs this notebook once per family (`grid` in
# pipeline.yaml); the register stage logs every trial to MLflow.

# %% tags=["parameters"]
upstream = ["split", "features"]
product = None
# files whose content Ploomber tracks for this stage (see pipeline.yaml)
resources_ = None
schema_path = "../config/schema.yaml"
family = "logistic"
n_trials = 2
seed = 42
n_jobs = 2
device = "cpu"

# %%
# inputs whose content decides whether this stage is up to date (Ploomber
# hashes them; pipeline.yaml lists them under resources_)
sorted(resources_ or {})

# %%
from tasks import io
from tasks.features import target_vector
from tasks.schema import load_schema
from tasks.train import assemble_model, tune_model

schema = load_schema(schema_path)
train = io.read_parquet(upstream["split"]["train"])
val = io.read_parquet(upstream["split"]["val"])
preprocessor = io.load_model(upstream["features"]["preprocessor"])
X_train, X_val = preprocessor.transform(train), preprocessor.transform(val)
y_train, y_val = target_vector(train, schema), target_vector(val, schema)

best, trials = tune_model(
    family, X_train, y_train, X_val, y_val,
    n_trials=n_trials, seed=seed, n_jobs=n_jobs, device=device,
)
model = assemble_model(preprocessor, best)
io.save_model(model, product["model"])
io.write_text(trials.to_csv(index=False), product["trials"])
best_trial = trials[trials["best"]].iloc[0]
io.write_json(
    {
        "family": family,
        "n_trials": n_trials,
        "best_trial": int(best_trial["trial"]),
        "val_roc_auc": float(best_trial["val_roc_auc"]),
        "best_params": {
            k.removeprefix("param_"): best_trial[k]
            for k in trials.columns
            if k.startswith("param_")
        },
    },
    product["summary"],
)
trials.sort_values("val_roc_auc", ascending=False)

# %%
ax = trials.plot.scatter(
    x="trial", y="val_roc_auc", figsize=(6, 3), title=f"{family}: validation ROC AUC"
)
