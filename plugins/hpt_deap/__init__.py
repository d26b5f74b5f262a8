"""hpt plugin package hpt_deap."""
