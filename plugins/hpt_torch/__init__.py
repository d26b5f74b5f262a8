"""hpt's PyTorch plugin: the `mlp` backend (a multilayer perceptron on tabular data), its
scikit-learn estimators (`hpt_torch.estimators`) and the `hpt lr-find` command.

Importing this package is cheap; torch loads with `hpt_torch.backend`, `.estimators` or `.training`.
"""
