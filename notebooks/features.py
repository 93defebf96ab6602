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
# # Features
# Fits the one preprocessing pipeline (`tasks.features.build_preprocessor`) on the
# training split only. It travels inside every model artifact, so training, batch
# scoring and the real-time API transform rows identically.

# %% tags=["parameters"]
upstream = ["split"]
product = None
# files whose content Ploomber tracks for this stage (see pipeline.yaml)
resources_ = None
schema_path = "../config/schema.yaml"

# %%
# inputs whose content decides whether this stage is up to date (Ploomber
# hashes them; pipeline.yaml lists them under resources_)
sorted(resources_ or {})

# %%
import pandas as pd

from tasks import io
from tasks.features import feature_names, fit_features
from tasks.schema import load_schema

schema = load_schema(schema_path)
train = io.read_parquet(upstream["split"]["train"])
preprocessor = fit_features(train, schema)
io.save_model(preprocessor, product["preprocessor"])
names = feature_names(preprocessor)
print(
    f"{len(schema.feature_names)} input columns -> {len(names)} model features "
    f"({len(schema.numeric_features)} numeric, "
    f"{len(schema.categorical_features)} categorical); dropped: {list(schema.drop)}"
)
preprocessor

# %% [markdown]
# ## Transformed sample (first rows of the training split)

# %%
pd.DataFrame(preprocessor.transform(train.head(5)), columns=names).T
