"""Hook implementations hpt finds through the `hpt` entry point."""

from hpt import hookimpl


@hookimpl
def hpt_register_strategies(register):
    register("halton", "hpt_plugin_example.halton:HaltonSearch", summary="Halton quasi-random search (example plugin)")
