"""Plugin discovery through real entry points: built-ins, the installed example package, and
broken third-party plugins (a fake distribution on PYTHONPATH) that must not break the rest."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import run_cli
from hpt.errors import PluginError
from hpt.plugins import Registry


def make_distribution(root: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """Write an installed-looking distribution (dist-info + modules) under `root`."""
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"  # wheel naming: no dashes in the name
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[hpt]\n{lines}\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


BROKEN_MODULES = {
    "needs_missing_dep": """
        from hpt import hookimpl

        @hookimpl
        def hpt_register_strategies(register):
            register("fancy", "fancy_impl:Fancy", requires={"not_a_real_module_xyz": "fancy-lib"})
    """,
    "misspelled_hook": """
        from hpt import hookimpl

        @hookimpl
        def hpt_register_strategys(register):
            register("typo", "x:Y")
    """,
    "raises_on_import": "raise RuntimeError('plugin is broken')\n",
}


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    return make_distribution(
        tmp_path / "site",
        "hpt-broken-plugins",
        {
            "fancy": "needs_missing_dep",
            "typo": "misspelled_hook",
            "crash": "raises_on_import",
            "ghost": "no_such_module",
        },
        BROKEN_MODULES,
    )


def plugins_json(env: dict | None = None) -> dict:
    result = run_cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_builtins_and_the_example_plugin_are_listed():
    listing = plugins_json()
    names = {(p["kind"], p["name"]): p for p in listing["plugins"]}
    for key in [("strategy", "grid"), ("strategy", "random"), ("backend", "function"), ("executor", "process")]:
        assert names[key]["distribution"] == "hpt" and names[key]["status"] == "ok"
    halton = names[("strategy", "halton")]
    assert (halton["distribution"], halton["version"], halton["status"]) == ("hpt-plugin-example", "0.1.0", "ok")


def test_broken_plugins_are_reported_and_the_others_still_work(broken_site):
    env = {"PYTHONPATH": str(broken_site)}
    listing = plugins_json(env)
    reasons = {b["name"]: b["reason"] for b in listing["broken"]}
    assert "plugin is broken" in reasons["crash"]
    assert "No module named 'no_such_module'" in reasons["ghost"]
    assert "hpt_register_strategys" in reasons["typo"]
    fancy = next(p for p in listing["plugins"] if p["name"] == "fancy")
    assert fancy["status"] == 'needs fancy-lib: pip install "fancy-lib"'
    assert fancy["distribution"] == "hpt-broken-plugins"
    assert {"grid", "random", "halton"} <= {p["name"] for p in listing["plugins"]}

    used = run_cli("run", "--strategy", "fancy", "--backend", "function", "--trials", "1", env=env)
    assert used.returncode == 1
    assert used.stderr.strip() == "error: strategy 'fancy' needs fancy-lib: pip install \"fancy-lib\""
    ok = run_cli("run", "--strategy", "random", "--backend", "function", "--trials", "2", "--quiet", env=env)
    assert ok.returncode == 0, ok.stderr


def test_autoload_can_be_disabled(broken_site):
    listing = plugins_json({"PYTHONPATH": str(broken_site), "HPT_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert {b["distribution"] for b in listing["broken"]} <= {"hpt"}
    assert {p["distribution"] for p in listing["plugins"]} == {"hpt"}


def test_registry_errors_are_one_line():
    registry = Registry(autoload=False)
    with pytest.raises(PluginError, match="unknown strategy 'nope'; available: .*grid.*random"):
        registry.get("strategy", "nope")
    with pytest.raises(PluginError, match="backend 'function' does not take option 'colour'"):
        registry.create("backend", "function", colour="red")


def test_a_plugin_object_can_be_added_at_run_time():
    from hpt import Strategy, Suggestion, hookimpl

    class Constant(Strategy):
        name = "constant"

        def ask(self, n=1):
            return [Suggestion({"x": 0.5}) for _ in range(n)]

    class LocalPlugin:
        @hookimpl
        def hpt_register_strategies(self, register):
            register("constant", Constant)

    registry = Registry(autoload=False)
    registry.add_plugin(LocalPlugin(), "local")
    from hpt.space import Float, Space

    strategy = registry.create("strategy", "constant", Space({"x": Float(0, 1)}))
    assert strategy.ask(2)[1].params == {"x": 0.5}
    assert registry.get("strategy", "constant").distribution == "local"


def test_event_hooks_see_every_trial(tmp_path):
    import hpt
    from hpt import hookimpl
    from hpt.plugins import registry

    seen = []

    class Notifier:
        @hookimpl
        def hpt_trial_finished(self, study, trial):
            seen.append((trial.number, trial.state.value))

        @hookimpl
        def hpt_study_finished(self, study, status):
            seen.append(("end", status))

    notifier = Notifier()
    registry().add_plugin(notifier, "notifier")
    try:
        hpt.optimize(lambda p: p["x"], {"x": hpt.Float(0, 1)}, trials=3, seed=0)
    finally:
        registry().pm.unregister(notifier)
    assert seen == [(0, "complete"), (1, "complete"), (2, "complete"), ("end", "FINISHED")]


def test_worker_imports_are_known_without_importing_the_backend():
    import subprocess
    import sys

    from hpt.api import worker_imports
    from hpt_basic.function_backend import FunctionBackend

    pytest.importorskip("torch")
    check = "import sys; from hpt.api import worker_imports; print(worker_imports('mlp'), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["('hpt_torch.backend',", "'torch._dynamo')", "False"]  # from the registration alone
    assert worker_imports(FunctionBackend(function="branin")) == ("hpt_basic.function_backend",)
    assert worker_imports(lambda params: 0.0) == ()
    with pytest.raises(PluginError, match="unknown backend 'nope'"):
        worker_imports("nope")


def test_install_hints_are_shell_safe():
    import shlex

    from hpt.plugins import PluginEntry

    entry = PluginEntry("tpe", "strategy", "x:Y", "hpt-optuna", "1.0", requires={"no_such_mod_xyz": "optuna>=3.6"})
    assert entry.install_hint() == 'pip install "optuna>=3.6"'
    assert shlex.split(entry.install_hint()) == ["pip", "install", "optuna>=3.6"]  # no redirection to a file


def test_a_failing_event_hook_does_not_silence_the_other_plugins(caplog):
    import hpt
    from hpt import hookimpl
    from hpt.plugins import registry

    seen = []

    class Broken:
        @hookimpl
        def hpt_trial_finished(self, study, trial):
            raise RuntimeError("notifier down")

    class Notifier:
        @hookimpl
        def hpt_trial_finished(self, trial):  # a hookimpl may take fewer arguments than the spec
            seen.append(trial.number)

    plugins = [Notifier(), Broken()]  # pluggy calls the last registered first: the broken one
    for i, plugin in enumerate(plugins):
        registry().add_plugin(plugin, f"plugin-{i}")
    try:
        hpt.optimize(lambda p: p["x"], {"x": hpt.Float(0, 1)}, trials=2, seed=0)
    finally:
        for plugin in plugins:
            registry().pm.unregister(plugin)
    assert seen == [0, 1]
    assert "plugin-1: hpt_trial_finished failed: RuntimeError: notifier down" in caplog.text
