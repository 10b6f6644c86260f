"""Which epoch of HandNet's fine-tuning the pipeline should keep, decided on validation digits
alone: the best epoch by validation accuracy (``best/``) or the one-cycle schedule's last
(``last/``).

For each run folder's hand-built HandNet, both fine-tunings (constrained and free) are re-run
with the pipeline's settings, recording every epoch's answers on the 500 validation digits.
These are split into two halves (alternate digits of each class); the best epoch is chosen on
one half and scored on the other, both ways round, beside the last epoch scored on the same
half. The test split is not read, except for the last epoch's test accuracy, which is printed
to show that the re-run matches the pipeline's stage.

    python benchmarks/bench_finetune_epoch.py --runs runs/default,runs/default-seed1,runs/default-seed2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import emit  # noqa: E402
from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data  # noqa: E402
from dissect.infra.datasets import split_validation  # noqa: E402
from handnet.finetune import FINETUNE_LR, MODES, finetune, freed_copy  # noqa: E402
from handnet.model import HandNet  # noqa: E402
from simpleconvnet.train import TrainConfig  # noqa: E402


def halves(labels: torch.Tensor) -> torch.Tensor:
    """A mask of every other digit of each class (the first half)."""
    first = torch.zeros(len(labels), dtype=torch.bool, device="cpu")
    for k in labels.unique().tolist():
        first[torch.nonzero(labels.cpu() == k).flatten()[::2]] = True
    return first


def one(run: Path, mode: str) -> dict[str, Any]:
    model, meta = load_checkpoint(run / "handnet-build" / "model")
    assert isinstance(model, HandNet)
    settings = json.loads((run / "run.json").read_text())
    train, (xv, yv) = split_validation(*load_checkpoint_data(meta, "train"), meta.data["name"])
    test = load_checkpoint_data(meta, "test")
    # the free mode trains a copy whose conv layers are plain weights: train it directly
    net = model if mode == "constrained" else freed_copy(model)
    right: list[torch.Tensor] = []

    def record(epoch: int, info: dict[str, Any]) -> None:
        with torch.no_grad():
            right.append((net(xv).argmax(1) == yv).cpu())

    config = TrainConfig(epochs=settings["finetune_epochs"], lr=FINETUNE_LR,
                         seed=settings["seed"], snapshot_every=0)  # fmt: skip
    result = finetune(net, train, test, "constrained", config, val=(xv, yv), quiet=True,
                      on_epoch_end=record)  # fmt: skip
    answers = torch.stack(right).double()  # [epochs, validation digits]
    first = halves(yv)
    ways = []
    for choose, score in ((first, ~first), (~first, first)):
        best = int(torch.argmax(answers[:, choose].mean(1)))  # ties: the earliest epoch
        scored = answers[:, score].mean(1)
        ways.append({"best_epoch": best + 1, "best_scored": float(scored[best]),
                     "last_scored": float(scored[-1])})  # fmt: skip
    return {"run": str(run), "mode": mode, "halves": ways,
            "last_epoch_test_accuracy": result.train.final.accuracy}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", default="runs/default,runs/default-seed1,runs/default-seed2")
    args = p.parse_args()
    runs = [Path(r) for r in args.runs.split(",")]
    missing = [r for r in runs if not (r / "handnet-build" / "model").is_dir()]
    if missing:
        print(f"bench_finetune_epoch: error: {missing[0]} has no handnet-build/model: run "
              f"`reports run` for it first", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    rows = [one(r, mode) for r in runs for mode in MODES]
    best = [w["best_scored"] for r in rows for w in r["halves"]]
    last = [w["last_scored"] for r in rows for w in r["halves"]]
    emit({"rows": rows, "comparisons": len(best),
          "mean_best_chosen": sum(best) / len(best), "mean_last": sum(last) / len(last),
          "last_at_least_as_good": sum(b <= a for b, a in zip(best, last, strict=True))})  # fmt: skip


if __name__ == "__main__":
    main()
