"""hpt plugin package hpt_dask."""
