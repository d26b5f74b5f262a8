"""An example third-party hpt plugin: Halton quasi-random search."""
