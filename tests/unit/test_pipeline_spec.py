"""pipeline.yaml's `resources_` must list exactly the tasks/ modules each task
imports (directly or through other tasks/ modules): that is what makes a change in
imported code rerun the stage. This test reads the code, not the docs."""

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((REPO / "pipeline.yaml").read_text())


def _imports(tree: ast.AST) -> dict[str, str]:
    """name bound in the code -> tasks module it comes from."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tasks":
                for a in node.names:
                    names[a.asname or a.name] = f"tasks.{a.name}"
            elif node.module.startswith("tasks."):
                for a in node.names:
                    names[a.asname or a.name] = node.module
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("tasks."):
                    names[a.asname or a.name] = a.name
    return names


def module_deps(module: str, seen=None) -> set[str]:
    seen = set() if seen is None else seen
    if module in seen:
        return seen
    seen.add(module)
    path = REPO / (module.replace(".", "/") + ".py")
    for dep in set(_imports(ast.parse(path.read_text())).values()):
        if (REPO / (dep.replace(".", "/") + ".py")).exists():
            module_deps(dep, seen)
    return seen


def task_modules(task: dict) -> set[str]:
    source = task["source"]
    if source.endswith(".py") and "/" in source:
        tree = ast.parse((REPO / source).read_text())
        direct = set(_imports(tree).values())
    else:
        module, func = source.rsplit(".", 1)
        mod_tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text())
        fn = next(
            n
            for n in mod_tree.body
            if isinstance(n, ast.FunctionDef) and n.name == func
        )
        top = _imports(
            ast.Module(
                body=[n for n in mod_tree.body if isinstance(n, ast.ImportFrom)],
                type_ignores=[],
            )
        )
        used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
        direct = {m for name, m in top.items() if name in used}
        direct |= set(_imports(fn).values())
    closure = set()
    for m in direct:
        closure |= module_deps(m)
    return closure


@pytest.mark.parametrize("task", SPEC["tasks"], ids=lambda t: t["name"])
def test_resources_list_exactly_the_imported_modules(task):
    declared = {k for k in task["params"]["resources_"] if k.startswith("tasks.")}
    for key in declared:
        assert task["params"]["resources_"][key] == key.replace(".", "/") + ".py"
    assert declared == task_modules(task)


@pytest.mark.parametrize("task", SPEC["tasks"], ids=lambda t: t["name"])
def test_tasks_reading_the_schema_track_it(task):
    if "schema_path" in task["params"]:
        assert task["params"]["resources_"]["schema"] == "{{schema_path}}"


def test_ingest_tracks_the_data_file():
    ingest = next(t for t in SPEC["tasks"] if t["name"] == "ingest")
    assert ingest["params"]["resources_"]["data"] == "{{data_path}}"


def test_notebooks_are_thin():
    """No function or class definitions in pipeline notebooks (house style)."""
    for nb in (REPO / "notebooks").glob("*.py"):
        tree = ast.parse(nb.read_text())
        defs = [
            n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
        ]
        assert not defs, f"{nb.name} defines {defs}: move them to tasks/"


def test_test_profile_has_the_same_parameters():
    main = yaml.safe_load((REPO / "env.yaml").read_text())
    test = yaml.safe_load((REPO / "env.test.yaml").read_text())
    assert set(main) == set(test)
    assert test["products"] != main["products"]
    assert test["tracking_uri"] != main["tracking_uri"]
