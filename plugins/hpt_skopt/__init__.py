"""hpt plugin package hpt_skopt."""
