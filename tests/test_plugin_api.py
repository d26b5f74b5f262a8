"""The plugin API: options declared by plugin classes (flags, help, validation, resume), defaults marked
at registration, one typed StudyConfig, the documented and exercised hooks, a core that names no plugin."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import hpt
import pytest
from click.testing import CliRunner
from conftest import child_runs, invoke_json, run_cli
from hpt import StudyConfig, hookspecs
from hpt.cli import cli
from hpt.errors import HptError, PluginError
from hpt.options import options_of
from hpt.plugins import KINDS, registry
from hpt.tracking import load_study

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core" / "hpt"


def help_text(*args: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_run_help_lists_the_chosen_backends_options_from_the_plugin():
    mlp = help_text("run", "--backend", "mlp")
    assert "Options of backend 'mlp':" in mlp
    assert "--dataset" in mlp and "--folds" in mlp and "k-fold cross-validation" in mlp
    assert "[default: 50]" in mlp  # max_epochs defaults to a constant the source names, resolved
    function = help_text("run", "--backend", "function", "--strategy", "hyperband")
    assert "Options of backend 'function':" in function and "--function" in function
    assert "--dataset" not in function
    assert "Options of strategy 'hyperband':" in function and "--max-budget" in function


def test_a_third_party_backends_options_show_in_help_and_survive_a_resume(store: str):
    text = help_text("run", "--backend", "quadratic")
    assert "Options of backend 'quadratic':" in text
    assert "--centre FLOAT" in text and "where the minimum lies on every axis" in text
    base = ("--backend", "quadratic", "--strategy", "random", "--tracking-uri", store)
    first = invoke_json("run", *base, "--centre", "2", "--dim", "3", "--trials", "3")
    run_id = first["parent_run_id"]
    assert load_study(run_id, store).config.backend_options == {"centre": 2.0, "dim": 3}
    resumed = invoke_json("run", "--resume", run_id, "--trials", "6", "--tracking-uri", store)
    assert resumed["trials"]["complete"] == 6
    for run in child_runs(store, run_id):
        params = {k: float(v) for k, v in run.data.params.items() if k.startswith("x")}
        assert len(params) == 3
        expected = sum((v - 2.0) ** 2 for v in params.values())
        assert run.data.metrics["objective"] == pytest.approx(expected)


def test_a_backend_object_records_its_constructor_arguments_for_a_resume(store: str):
    from hpt_plugin_example.quadratic import Quadratic

    study = hpt.create_study(Quadratic(centre=1.5), strategy="random", seed=0, tracking=store)
    study.optimize(2)
    run_id = study.tracker.parent_run_id
    assert load_study(run_id, store).config.backend == "quadratic"
    resumed, remaining = hpt.resume_study(run_id, store, trials=4)
    assert resumed.backend.centre == 1.5 and remaining == 2


def test_options_are_read_without_importing_the_plugin():
    code = (
        "import sys; from hpt.options import options_of; "
        "names = [o.name for o in options_of('hpt_torch.backend:MLPBackend', 'backend')]; "
        "print('dataset' in names, 'torch' in sys.modules, 'hpt_torch.backend' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False", "False"]


def test_every_option_of_the_built_in_and_example_plugins_has_help():
    for kind in KINDS:
        for entry in registry().entries[kind].values():
            if entry.distribution in ("hpt", "hpt-plugin-example") and not entry.missing():
                undocumented = [o.name for o in entry.options() if not o.help]
                assert not undocumented, f"{kind} {entry.name!r}: no `Options:` line for {undocumented}"


def test_options_follow_keyword_arguments_passed_on_to_a_base_class():
    names = {o.name for o in options_of("hpt_basic.multi_fidelity:Hyperband", "strategy")}
    assert {"iterations", "min_budget", "max_budget", "eta", "sampler"} <= names
    assert not names & {"space", "directions", "seed"}  # supplied by the study


def test_an_unknown_option_is_refused_before_the_constructor_runs_and_a_constructors_typeerror_stays():
    with pytest.raises(PluginError, match=r"strategy 'hyperband' does not take option 'colour'; its options: .*eta"):
        registry().create("strategy", "hyperband", hpt.Space({"x": hpt.Float(0, 1)}), colour="red")
    with pytest.raises(TypeError, match="int"):  # raised inside __init__: not an option problem
        registry().create("backend", "quadratic", dim=[2])


def test_defaults_are_marked_at_registration():
    reg = registry()
    assert reg.default_name("backend") == "mlp"
    assert reg.default("executor").name == "process"
    assert reg.default("strategy") is not None


def test_without_the_default_backends_library_hpt_run_says_what_to_install(tmp_path: Path):
    code = (
        "import sys; sys.modules['torch'] = None; sys.argv = ['hpt', 'run', '--trials', '1']; "
        "from hpt.cli import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: the default backend 'mlp' needs torch: pip install \"hpt[torch]\" (or choose another backend, "
        "see `hpt plugins`)"
    ]


def test_study_config_logs_set_values_only_and_reads_back(store: str):
    config = StudyConfig(backend="function", backend_options={"function": "branin"}, strategy="random", seed=3)
    assert StudyConfig.from_dict(config.to_dict()) == config
    assert "None" not in config.to_params().values()
    with pytest.raises(HptError, match="unknown study setting 'trails'"):
        config.replace(trails=3)
    with pytest.raises(HptError, match="workers must be a positive integer"):
        StudyConfig(workers=0)
    study = hpt.create_study(config=config, trials=2, tracking=store)
    study.optimize(2)
    from mlflow.tracking import MlflowClient

    params = MlflowClient(store).get_run(study.tracker.parent_run_id).data.params
    assert params["backend.function"] == "branin" and params["seed"] == "3"
    assert all(value != "None" for value in params.values())


def _hookspecs() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in vars(hookspecs).items()
        if name.startswith("hpt_") and callable(fn) and hasattr(fn, "hpt_spec")
    }


def test_every_hook_is_documented_with_its_arguments():
    text = (ROOT / "docs" / "plugins.md").read_text()
    specs = _hookspecs()
    assert len(specs) >= 9
    for name, signature in specs.items():
        call = f"`{name}({', '.join(signature.parameters)})`"
        assert call in text, f"docs/plugins.md does not document {call}"
        assert inspect.getdoc(getattr(hookspecs, name)).startswith("Called "), f"{name} does not say when"


class Recorder:
    """A plugin implementing every hook, recording which were called."""

    def __init__(self) -> None:
        self.called: set[str] = set()

    @hpt.hookimpl
    def hpt_register_strategies(self, register):
        self.called.add("hpt_register_strategies")

    @hpt.hookimpl
    def hpt_register_backends(self, register):
        self.called.add("hpt_register_backends")

    @hpt.hookimpl
    def hpt_register_executors(self, register):
        self.called.add("hpt_register_executors")

    @hpt.hookimpl
    def hpt_register_commands(self, cli):
        self.called.add("hpt_register_commands")

    @hpt.hookimpl
    def hpt_study_started(self, study):
        self.called.add("hpt_study_started")

    @hpt.hookimpl
    def hpt_trial_started(self, study, trial):
        self.called.add("hpt_trial_started")

    @hpt.hookimpl
    def hpt_trial_finished(self, study, trial):
        self.called.add("hpt_trial_finished")

    @hpt.hookimpl
    def hpt_study_finished(self, study, status):
        self.called.add("hpt_study_finished")

    @hpt.hookimpl
    def hpt_study_artifacts(self, study, directory):
        self.called.add("hpt_study_artifacts")
        (directory / "recorded.json").write_text(json.dumps(sorted(self.called)))


def test_every_hook_is_called(store: str):
    from mlflow.tracking import MlflowClient

    recorder = Recorder()
    reg = registry()
    reg.add_plugin(recorder, "recorder")
    try:
        reg.pm.hook.hpt_register_commands(cli=cli)
        study = hpt.create_study("function", strategy="random", trials=2, seed=0, tracking=store)
        study.optimize(2)
        artifacts = MlflowClient(store).list_artifacts(study.tracker.parent_run_id, "plots")
    finally:
        reg.pm.unregister(recorder)
    assert recorder.called == set(_hookspecs())
    assert "plots/recorded.json" in {a.path for a in artifacts}  # what plugins write lands under plots/


def test_core_names_no_plugin_and_no_plugin_option():
    names = {name for kind in KINDS for name in registry().names(kind)}
    options = {o.name for kind in KINDS for e in registry().entries[kind].values() for o in e.options()}
    names -= {"auto"}  # also the core's own `--batch-trials auto`
    options -= {"metric", "seed", "name"}  # words the core uses for its own settings too
    flags = {"--" + o.replace("_", "-") for o in options}
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in names | flags, f"{path.name} spells {node.value!r}"


def test_core_modules_import_each_other_without_a_cycle():
    graph: dict[str, set[str]] = {}
    for path in CORE.glob("*.py"):
        imported = set()
        for node in ast.parse(path.read_text()).body:  # module level: what runs at import time
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hpt."):
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("hpt.")}
        graph[f"hpt.{path.stem}"] = imported

    def visit(module: str, trail: tuple[str, ...]) -> None:
        assert module not in trail, f"import cycle: {' -> '.join((*trail, module))}"
        for target in graph.get(module, ()):
            visit(target, (*trail, module))

    for module in graph:
        visit(module, ())


def test_hpt_run_help_and_plugins_import_no_heavy_library():
    code = (
        "import sys; from click.testing import CliRunner; from hpt.cli import cli; "
        "CliRunner().invoke(cli, ['run', '--help']); CliRunner().invoke(cli, ['plugins']); "
        "print(sorted(m for m in ('torch', 'mlflow', 'skopt', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_errors_for_a_bad_plugin_flag_value_are_one_line():
    result = run_cli("run", "--backend", "function", "--dim", "many", "--trials", "1")
    assert result.returncode == 2 and "Invalid value for '--dim'" in result.stderr


def test_plugin_flags_belong_to_one_command_line_only():
    assert "--population" in help_text("run", "--strategy", "deap")
    assert all("--population" not in p.opts for p in cli.commands["run"].params)
    assert "--population" not in help_text("run", "--strategy", "random")
