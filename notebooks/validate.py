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
# # Validate
# Checks the raw snapshot against the declared schema (`config/schema.yaml`):
# columns present, types, ranges, allowed categories, missing values, duplicates,
# and a binary target. Any error stops the build here, before anything downstream
# (models, registry) is touched. The validated table has canonical dtypes and the
# missing-value tokens (e.g. `unknown`) replaced by NaN.

# %% tags=["parameters"]
upstream = ["ingest"]
product = None
# files whose content Ploomber tracks for this stage (see pipeline.yaml)
resources_ = None
schema_path = "../config/schema.yaml"
max_duplicate_share = 0.05

# %%
# inputs whose content decides whether this stage is up to date (Ploomber
# hashes them; pipeline.yaml lists them under resources_)
sorted(resources_ or {})

# %%
import pandas as pd

from tasks import io
from tasks.schema import coerce_frame, load_schema
from tasks.validate import check_frame, validate_frame

schema = load_schema(schema_path)
raw = io.read_parquet(upstream["ingest"]["data"])
source = io.read_json(upstream["ingest"]["meta"])
report = validate_frame(raw, schema, max_duplicate_share=max_duplicate_share)
print(f"{source['source']}: {report['rows']} rows, sha256 {source['sha256'][:12]}...")

# %% [markdown]
# ## Errors and warnings

# %%
issues = pd.DataFrame(
    [{"level": "error", **i} for i in report["errors"]]
    + [{"level": "warning", **i} for i in report["warnings"]],
    columns=["level", "column", "rule", "message", "count", "examples"],
)
issues

# %% [markdown]
# ## Column profile

# %%
profile = pd.DataFrame(report["profile"]).T
profile

# %%
missing = profile["missing"].astype(int)
ax = (missing[missing > 0] / report["rows"]).sort_values().plot.barh(
    figsize=(6, 3), title="share of missing values (after missing tokens)"
)

# %%
check_frame(report, source=source["source"])
validated = coerce_frame(raw, schema)
io.write_parquet(validated, product["data"])
io.write_json(report, product["report"])
validated.head()
