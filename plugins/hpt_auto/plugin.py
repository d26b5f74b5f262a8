"""Registers the `auto` strategy (entry point `hpt = auto`); torch and scipy are imported only when it runs."""

from hpt import hookimpl


@hookimpl
def hpt_register_strategies(register):
    register(
        "auto",
        "hpt_auto.strategy:AutoStrategy",
        requires={"torch": "torch", "scipy": "scipy", "threadpoolctl": "threadpoolctl"},
        extra="torch",
        default=True,
        summary="chooses for you: Gaussian-process BO (log EI, warped losses) for one objective, NSGA-II for several",
    )
