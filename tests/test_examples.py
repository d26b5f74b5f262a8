"""Every example under examples/ runs as a user runs it (a subprocess in a fresh directory, tiny budgets).
The third-party plugin package is exercised through the CLI in test_cli.py."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from conftest import cli_json
from hpt.cli import cli
from hpt.plugins import registry
from hpt_reports.commands import compare, ui
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # end to end: real CLI processes, servers or clusters

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DOCS = Path(__file__).resolve().parents[1] / "docs"


def run_example(name: str, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, cwd=cwd, timeout=240
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_custom_objective_prints_the_best_params_and_their_value(tmp_path: Path):
    out = run_example("custom_objective.py", "--trials", "15", cwd=tmp_path)
    best = float(re.search(r"best value (\S+) after 15 trials", out).group(1))
    params = dict(re.findall(r"^  (\w+) = (.+)$", out, flags=re.M))
    spec = importlib.util.spec_from_file_location("custom_objective", EXAMPLES / "custom_objective.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    typed = {"learning_rate": float(params["learning_rate"]), "n_layers": int(params["n_layers"])}
    typed["activation"] = params["activation"]
    assert abs(module.objective(typed) - best) < 1e-3


def test_space_file_from_the_cli(tmp_path: Path):
    space = yaml.safe_load((EXAMPLES / "space.yaml").read_text())
    summary = cli_json(
        "run", "--space", str(EXAMPLES / "space.yaml"), "--dataset", "iris", "--trials", "3",
        "--set", "max_epochs=2", "--seed", "1",
    )  # fmt: skip
    assert summary["trials"]["complete"] == 3
    best = summary["best_params"]
    assert set(best) <= set(space) and best["max_epochs"] == 2 and best["patience"] == 5
    assert best["activation"] in ("relu", "elu") and 16 <= best["n_neurons"] <= 128
    assert ("momentum" in best) == (best["optimizer"] == "momentum")


def test_classification_and_regression_compared_with_a_table_each(tmp_path: Path):
    out = run_example(
        "classification_and_regression.py", "--quick", "--seeds", "1", "--trials", "2", "--strategies",
        "random,hyperband", cwd=tmp_path,
    )  # fmt: skip
    for kind, dataset in (("classification", "digits"), ("regression", "diabetes")):
        section = out.split(f"\n{kind}\n", 1)[1]
        assert section.startswith(f"mlp-{dataset}: minimize valid_loss, 2 trials x 1 seeds")
        rows = section.splitlines()[2:4]
        assert sorted(r.split()[0] for r in rows) == ["hyperband", "random"]
        assert (tmp_path / f"compare-{dataset}" / "anytime.png").exists()
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("hpt-examples")
    runs = client.search_runs([experiment.experiment_id], "tags.`hpt.kind` = 'comparison'")
    assert sorted(r.data.tags["hpt.task"] for r in runs) == ["mlp-diabetes", "mlp-digits"]


def test_ask_tell_with_an_own_training_loop_logs_learning_curves(tmp_path: Path):
    out = run_example("ask_tell_numpy.py", "--trials", "4", "--track", cwd=tmp_path)
    assert re.search(r"best validation log-loss 0\.\d+ \(trial \d\)", out)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("hpt-examples")
    parent = client.search_runs([experiment.experiment_id], "attributes.run_name = 'ask-tell'")[0]
    assert parent.info.status == "FINISHED"
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(children) == 4
    history = client.get_metric_history(children[0].info.run_id, "valid_loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(15))
    assert min(m.value for m in history) == children[0].data.metrics["objective"]


def test_cli_docs_name_every_command_and_option():
    plugin_commands = click.Group()
    registry().pm.hook.hpt_register_commands(cli=plugin_commands)
    commands = {**cli.commands, **plugin_commands.commands, "compare": compare, "ui": ui}
    text = (DOCS / "cli.md").read_text()
    assert {"run", "best", "plugins", "lr-find", "compare", "ui"} <= set(commands)
    for name, command in commands.items():
        assert f"## hpt {name}" in text, f"docs/cli.md has no section for hpt {name}"
        section = text.split(f"## hpt {name}", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            for flag in param.opts if isinstance(param, click.Option) else []:
                if flag.startswith("--") and flag != "--help":
                    assert f"`{flag}" in section, f"docs/cli.md does not describe hpt {name} {flag}"


def test_docs_link_to_files_that_exist():
    for page in [*DOCS.glob("*.md"), EXAMPLES / "README.md"]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links to missing {target}"
