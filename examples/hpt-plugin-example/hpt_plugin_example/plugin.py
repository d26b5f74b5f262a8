"""Hook implementations hpt finds through the `hpt` entry point."""

from hpt import hookimpl


@hookimpl
def hpt_register_strategies(register):
    register("halton", "hpt_plugin_example.halton:HaltonSearch", summary="Halton quasi-random search (example plugin)")


@hookimpl
def hpt_register_backends(register):
    register("quadratic", "hpt_plugin_example.quadratic:Quadratic", summary="a quadratic bowl (example plugin)")
