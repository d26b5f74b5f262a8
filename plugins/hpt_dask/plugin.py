"""Registers the `dask` executor (entry point `hpt = dask`).

Nothing heavy is imported here: dask.distributed loads when a study builds the executor.
"""

from hpt import hookimpl


@hookimpl
def hpt_register_executors(register):
    register(
        "dask",
        "hpt_dask.runner:DaskRunner",
        requires={"distributed": "dask[distributed]"},
        extra="dask",
        summary="trials on a dask.distributed cluster (--scheduler tcp://HOST:PORT) or a local one",
    )
