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
# # Evaluate
# Compares every trained family on held-out data. The candidate for registration is
# the family with the best **validation** ROC AUC; the test split is only used to
# report, so the reported test figures are not tuned on.
#
# **Why `duration` is not a feature.** `duration` is the length of the last call.
# It is only known once the call has ended, when the outcome is practically known
# too (a long call usually means a subscription). A model using it looks excellent
# offline (ROC AUC above 0.9 on this data) and is useless before the call, which is
# when a prediction is needed. The schema drops it (`drop: [duration]`); published
# results without it are around 0.79-0.80 ROC AUC.

# %% tags=["parameters"]
upstream = ["split", "train-*"]
product = None
# files whose content Ploomber tracks for this stage (see pipeline.yaml)
resources_ = None
schema_path = "../config/schema.yaml"
cost_fp = 1.0
cost_fn = 8.0
slice_columns = ["contact", "poutcome"]
baseline = "logistic"

# %%
# inputs whose content decides whether this stage is up to date (Ploomber
# hashes them; pipeline.yaml lists them under resources_)
sorted(resources_ or {})

# %%
import pandas as pd

from tasks import evaluate as ev
from tasks import io
from tasks.features import target_vector
from tasks.schema import load_schema

schema = load_schema(schema_path)
val = io.read_parquet(upstream["split"]["val"])
test = io.read_parquet(upstream["split"]["test"])
y_val, y_test = target_vector(val, schema), target_vector(test, schema)

results, probas = {}, {}
for task_products in upstream["train-*"].values():
    summary = io.read_json(task_products["summary"])
    family = summary["family"]
    model = io.load_model(task_products["model"])
    p_val = model.predict_proba(val)[:, 1]
    probas[family] = model.predict_proba(test)[:, 1]
    results[family] = {
        "val": ev.compute_metrics(y_val, p_val),
        "test": ev.compute_metrics(y_test, probas[family]),
        "best_params": summary["best_params"],
        "model_path": task_products["model"],
        "trials_path": task_products["trials"],
        "p_val": p_val,
    }
champion = ev.select_champion(results)
comparison = ev.compare_families(results, baseline=baseline)
print(f"candidate: {champion} (best validation ROC AUC)")
comparison.round(4)

# %% [markdown]
# ## ROC and precision-recall on the test split

# %%
fig = ev.plot_curves(y_test, probas)

# %% [markdown]
# ## Calibration

# %%
fig = ev.plot_calibration(
    {f: ev.calibration_table(y_test, p) for f, p in probas.items()}
)

# %% [markdown]
# ## Decision threshold at the business cost
# A false positive (a call that does not convert) costs `cost_fp`, a false
# negative (a subscriber never called) costs `cost_fn`. The threshold is chosen on
# the validation split and then applied to the test split.

# %%
chosen = ev.cost_threshold(y_val, results[champion]["p_val"], cost_fp, cost_fn)
on_test = ev.cost_at(y_test, probas[champion], chosen["threshold"], cost_fp, cost_fn)
call_all = ev.cost_at(y_test, probas[champion], 0.0, cost_fp, cost_fn)
pd.DataFrame(
    {"chosen threshold (test)": on_test, "call everyone (test)": call_all}
).T.round(4)

# %% [markdown]
# ## Slices of the candidate on the test split

# %%
slices = ev.slice_metrics(test, y_test, probas[champion], list(slice_columns))
slices.round(4)

# %%
metrics = {
    "champion": champion,
    "baseline": baseline,
    "threshold": chosen["threshold"],
    "cost": {"validation": chosen, "test": on_test, "cost_fp": cost_fp,
             "cost_fn": cost_fn},
    "families": {
        f: {k: v for k, v in r.items() if k != "p_val"} for f, r in results.items()
    },
    "slices": slices.to_dict(orient="records"),
}
io.write_json(metrics, product["metrics"])
