"""hpt plugin package hpt_torch."""
