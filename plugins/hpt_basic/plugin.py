"""Registers the built-in strategies, backend and executors (entry point `hpt = basic`)."""

from hpt import hookimpl


@hookimpl
def hpt_register_strategies(register):
    register("random", "hpt_basic.random_search:RandomSearch", summary="uniform / log-uniform random search")
    register("grid", "hpt_basic.grid_search:GridSearch", summary="every combination, n points per continuous axis")
    register(
        "successive-halving",
        "hpt_basic.multi_fidelity:SuccessiveHalving",
        summary="start many at a small budget, promote the best 1/eta",
    )
    register("hyperband", "hpt_basic.multi_fidelity:Hyperband", summary="successive halving brackets (Li et al.)")
    register("asha", "hpt_basic.multi_fidelity:ASHA", summary="asynchronous successive halving")


@hookimpl
def hpt_register_backends(register):
    register("function", "hpt_basic.function_backend:FunctionBackend", summary="test functions with known optima")


@hookimpl
def hpt_register_executors(register):
    register("serial", "hpt.executors:SerialRunner", summary="one trial at a time in this process")
    register("process", "hpt_basic.process_runner:ProcessRunner", summary="--workers N local processes", default=True)
