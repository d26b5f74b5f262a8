"""hpt's dask.distributed executor (`pip install "hpt[dask]"`).

    hpt run --executor dask --workers 4                      # a LocalCluster of 4 worker processes
    hpt run --executor dask --scheduler tcp://HOST:8786      # an existing cluster (`dask scheduler` + `dask worker`)

    hpt.optimize(objective, space, executor="dask", workers=4)
    hpt.optimize(objective, space, executor="dask", executor_options={"scheduler": "tcp://HOST:8786"})

Workers need hpt (and the backend's libraries) installed; the study loop and MLflow stay in the driver.
"""
