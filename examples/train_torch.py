"""A plain PyTorch training script that knows nothing of hpt: an MLP on scikit-learn's digits, on the CPU.

It takes its hyperparameters as flags and prints one JSON line per epoch and a final one, which is all
`hpt run --backend command` needs (see README.md in this directory for the command):

    python examples/train_torch.py --lr 0.01 --hidden 64 --epochs 10
    {"epoch": 0, "val_loss": 0.61, "val_accuracy": 0.86}
    ...
    {"val_loss": 0.12, "val_accuracy": 0.97}

With --checkpoint-dir it saves its state there after every epoch and, run again with more --epochs,
continues where it stopped (what hyperband's promoted trials do).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam's learning rate")
    parser.add_argument("--hidden", type=int, default=64, help="units per hidden layer")
    parser.add_argument("--layers", type=int, default=1, help="hidden layers")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", help="save to / continue from this directory")
    return parser.parse_args()


def network(args: argparse.Namespace) -> nn.Module:
    layers: list[nn.Module] = []
    width = 64
    for _ in range(args.layers):
        layers += [nn.Linear(width, args.hidden), nn.ReLU(), nn.Dropout(args.dropout)]
        width = args.hidden
    return nn.Sequential(*layers, nn.Linear(width, 10))


def main() -> None:
    args = arguments()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(x / 16.0, y, test_size=0.25, random_state=0, stratify=y)
    x_train, x_valid = torch.tensor(x_train, dtype=torch.float32), torch.tensor(x_valid, dtype=torch.float32)
    y_train, y_valid = torch.tensor(y_train), torch.tensor(y_valid)

    model = network(args)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    checkpoint = Path(args.checkpoint_dir) / "model.pt" if args.checkpoint_dir else None
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
    start, last = 0, None
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, last = state["epoch"], state["last"]

    for epoch in range(start, args.epochs):
        model.train()
        order = torch.randperm(len(x_train))
        for i in range(0, len(order), args.batch_size):
            batch = order[i : i + args.batch_size]
            optimizer.zero_grad()
            loss_fn(model(x_train[batch]), y_train[batch]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_valid)
            last = {
                "val_loss": loss_fn(logits, y_valid).item(),
                "val_accuracy": (logits.argmax(1) == y_valid).float().mean().item(),
            }
        print(json.dumps({"epoch": epoch, **last}), flush=True)
        if checkpoint is not None:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                        "last": last}, checkpoint)  # fmt: skip
    print(json.dumps(last))


if __name__ == "__main__":
    main()
