"""nbval over every stage notebook, run headless as Ploomber would run it.

nbval executes `.ipynb` files and does not inject parameters, so each stage is
rendered by Ploomber (the test profile's parameters injected, upstream products
from the session build) and written as an `.ipynb` first. Products, the MLflow store
and the experiment point into a scratch copy, so running the notebooks here never
touches the session build.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import nbformat
import pytest

from tasks.config import load_env
from tests.conftest import REPO

pytestmark = pytest.mark.slow

STAGES = ["validate", "features", "train-logistic", "train-xgboost",
          "train-lightgbm", "evaluate", "register", "explain"]


@pytest.fixture(scope="module")
def rendered(built, tmp_path_factory):
    from ploomber.spec import DAGSpec

    scratch = tmp_path_factory.mktemp("nbval")
    shutil.copytree(built.products, scratch / "products")
    shutil.copytree(built.root / "tracking", scratch / "tracking")
    env = load_env(
        REPO / "env.test.yaml",
        overrides={
            "products": str(scratch / "products"),
            "tracking_uri": f"sqlite:///{scratch / 'tracking' / 'mlflow.db'}",
            "artifact_root": str(scratch / "tracking" / "artifacts-nbval"),
            "experiment": "nbship-nbval",
        },
    )
    dag = DAGSpec(str(REPO / "pipeline.yaml"), env=env).to_dag()
    dag.render(force=True, show_progress=False)
    out = scratch / "notebooks"
    out.mkdir()
    paths = {}
    for name in STAGES:
        nb = dag[name].source.nb_obj_rendered
        assert nb.metadata["kernelspec"]["name"] == "nbship"
        paths[name] = out / f"{name}.ipynb"
        nbformat.write(nb, paths[name])
    return paths


@pytest.mark.parametrize("stage", STAGES)
def test_stage_notebook_runs_headless_under_nbval(rendered, stage):
    path = rendered[stage]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
         "-o", "addopts=", "-q", path.name],
        cwd=path.parent, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout


def test_source_notebooks_are_committed_without_injected_cells_or_outputs():
    for source in (REPO / "notebooks").glob("*.py"):
        text = source.read_text()
        assert "injected-parameters" not in text, f"{source.name}: run `ploomber nb --remove`"
        assert 'tags=["parameters"]' in text, f"{source.name} has no parameters cell"
    assert not list((REPO / "notebooks").glob("*.ipynb"))
