import pytest

from tasks.cli import extract_error, main
from tasks.config import load_env
from tasks.errors import ConfigError
from tasks.lineage import git_info, lineage_tags


def test_load_env_resolves_here_and_overrides(tmp_path):
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    (tmp_path / "env.yaml").write_text("products: '{{here}}/out'\nn: 3\n")
    env = load_env(tmp_path / "env.yaml", overrides={"n": "7"})
    assert env == {"products": f"{tmp_path}/out", "n": 7}
    with pytest.raises(ConfigError, match="unknown parameter 'm'"):
        load_env(tmp_path / "env.yaml", overrides={"m": "1"})


def test_extract_error_from_a_papermill_failure():
    output = (
        "Executing: 100%\n"
        "\x1b[0;31mDataValidationError\x1b[0m: data.csv failed validation with 1 "
        "error(s):\n[present] column 'age' is declared in the schema but missing\n"
        "\n"
        "ploomber.exceptions.TaskBuildError: Error building task 'validate'\n"
    )
    name, message = extract_error(output)
    assert name == "DataValidationError"
    assert message.splitlines() == [
        "data.csv failed validation with 1 error(s):",
        "[present] column 'age' is declared in the schema but missing",
    ]


def test_extract_error_for_a_missing_tracked_file():
    output = (
        "FileNotFoundError: Error reading params.resources_ with key 'data'. "
        "Expected value '/x/new.csv' to be an existing file.\n"
    )
    assert extract_error(output) == (
        "DataError",
        "data file '/x/new.csv' does not exist",
    )


def test_extract_error_from_a_function_task():
    output = "Traceback...\ntasks.errors.DataError: data file 'x.csv' is empty\n"
    assert extract_error(output) == ("DataError", "data file 'x.csv' is empty")
    assert extract_error("KeyError: 'x'\n") is None


def test_cli_errors_are_one_line_with_exit_code(tmp_path, capsys, frame):
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "schema.yaml"
    assert main(["infer-schema", str(path), "--target", "y", "--out", str(out)]) == 0
    assert "target: y" in out.read_text()
    # a second run refuses to overwrite the reviewed file
    assert main(["infer-schema", str(path), "--target", "y", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith("pass --force to overwrite it")
    assert (
        main(
            [
                "infer-schema",
                str(path),
                "--target",
                "nope",
                "--out",
                str(tmp_path / "x.yaml"),
            ]
        )
        == 2
    )


def test_every_command_has_help(capsys):
    for argv in (
        ["--help"],
        ["build", "--help"],
        ["infer-schema", "--help"],
        ["models", "--help"],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
        assert "usage: nbship" in capsys.readouterr().out


def test_lineage_records_git_and_versions(tmp_path):
    assert git_info(tmp_path)["commit"] == "unknown"
    tags = lineage_tags("abc", "data.csv", project_dir=tmp_path)
    assert tags["lineage.data_sha256"] == "abc"
    assert tags["lineage.version.scikit-learn"] != "not installed"
