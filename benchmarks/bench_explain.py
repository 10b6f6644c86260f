"""Explanations checked honestly, on the default pipeline's networks (one run folder per seed,
made by ``reports run --seed S`` and reused when present):

- class-driver claims: each class's carrying channels of the last conv layer (derived on the
  training digits) confirmed on the test digits against 200 random channel sets of the same
  size, for recall and for margin (p < 0.05): classes confirmed per seed (target 9 of 10), for
  the pruned SimpleConvNet and for HandNet as built;
- coverage: the share of each class's positive score carried by confidently described
  channels (target 80 % for every class of the pruned net; HandNet 100 %);
- descriptions on real strokes: the share of conv1's confidently described line and edge
  channels whose description holds on the test digits (dissect.strokes; target 80 %);
- the compiled explanation of the pruned net (handnet.compile): error rate with conv1 compiled
  against the original's (target at most 1.5x), accuracy with conv1 and conv2 compiled
  (target at least 96.5 %); the head refitted on the training digits, its L2 penalty chosen on
  their validation split. Also reported: the original with only its head refitted the same way
  (how much of the gap the refit alone costs). Where the pruned net kept conv3, "conv1 and
  conv2" keeps conv3 as trained, and all three layers compiled are reported too; and conv1
  from the Gabor fits of its own weights instead of its words.

    python benchmarks/bench_explain.py --seeds 0,1,2 [--runs-root runs] [--draws 200]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, run_cli  # noqa: E402
from dissect.explain import explain_classes  # noqa: E402
from dissect.faithfulness import driver_check  # noqa: E402
from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data  # noqa: E402
from dissect.labels import describe_model  # noqa: E402
from dissect.strokes import check_first_layer  # noqa: E402
from handnet.compile import compile_explanation, refit_readout  # noqa: E402
from simpleconvnet.model import SimpleConvNet  # noqa: E402

CONFIRMED, COVERAGE, COMPILED_RATIO, COMPILED_ACCURACY, DESCRIBED = 9, 0.8, 1.5, 0.965, 0.8


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum()) / len(y)


def audit_net(path: Path, draws: int) -> dict:
    model, meta = load_checkpoint(path)
    assert isinstance(model, SimpleConvNet)  # the pruned net or HandNet
    xt, yt = load_checkpoint_data(meta, "train")
    x, y = load_checkpoint_data(meta, "test")
    reasons = explain_classes(model, xt, yt)
    last = model.conv_names[-1]
    confirmed = []
    for r in reasons:
        checks = driver_check(
            model, last, r.index, [d.channel for d in r.carried_by], x, y, draws=draws
        )
        confirmed.append(all(c.holds for c in checks) and bool(r.carried_by))
    strokes = check_first_layer(model, describe_model(model), x)
    return {
        "test_accuracy": accuracy(model, x, y),
        "descriptions_checked": len(strokes),
        "descriptions_confirmed_on_strokes": sum(c.holds for c in strokes),
        "description_share": sum(c.holds for c in strokes) / max(1, len(strokes)),
        "classes_confirmed": int(sum(confirmed)),
        "confirmed_per_class": confirmed,
        "coverage_per_class": [round(r.coverage, 4) for r in reasons],
        "coverage_min": min(r.coverage for r in reasons),
    }


def compiled(path: Path) -> dict:
    """The compiled explanation's accuracies: conv1 alone, conv1 and conv2 (a third layer kept
    as trained) and, for a pruned net that kept conv3, all three layers."""
    model, meta = load_checkpoint(path)
    assert isinstance(model, SimpleConvNet)
    xt, yt = load_checkpoint_data(meta, "train")
    x, y = load_checkpoint_data(meta, "test")
    dataset = str(meta.data.get("name"))
    original = accuracy(model, x, y)
    table = describe_model(model)
    refitted = copy.deepcopy(model)
    refit_readout(refitted, xt, yt, dataset)
    names = list(model.conv_names)
    conv1, both, *every = (
        accuracy(compile_explanation(model, xt, yt, layers=tuple(names[:n]), descriptions=table,
                                     dataset=dataset), x, y)
        for n in range(1, len(names) + 1)
    )  # fmt: skip
    gabor = compile_explanation(model, xt, yt, layers=("conv1",), descriptions=table,
                                dataset=dataset, first="gabor")  # fmt: skip
    return {"conv_layers": len(names), "original_accuracy": original,
            "gabor_fit_conv1_accuracy": accuracy(gabor, x, y),
            "head_refitted_accuracy": accuracy(refitted, x, y),
            "conv1_accuracy": conv1, "conv1_conv2_accuracy": both,
            "all_three_accuracy": every[0] if every else None,
            # from the error counts: float accuracies make 24 errors against 16 read 1.5000018
            "conv1_error_ratio": round((1 - conv1) * len(y)) / max(1, round((1 - original) * len(y)))}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--draws", type=int, default=200)
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        name = "default" if seed == 0 else f"default-seed{seed}"
        run_cli("reports", "run", "--name", name, "--seed", str(seed), "--runs-root", args.runs_root, "--quiet")  # fmt: skip
        run = Path(args.runs_root) / name
        pruned = audit_net(run / "prune" / "final", args.draws)
        hand = (
            audit_net(run / "handnet-build" / "model", args.draws)
            if (run / "handnet-build" / "model").exists()
            else None
        )
        per_seed[seed] = {
            "pruned": pruned,
            "handnet_built": hand,
            "compiled": compiled(run / "prune" / "final"),
        }
    worst = lambda key, net: min(s[net][key] for s in per_seed.values() if s[net])  # noqa: E731
    ratios = [s["compiled"]["conv1_error_ratio"] for s in per_seed.values()]
    emit({
        "seeds": seeds, "draws": args.draws, "per_seed": per_seed,
        "targets": {
            f"pruned_classes_confirmed_ge_{CONFIRMED}": worst("classes_confirmed", "pruned") >= CONFIRMED,
            f"handnet_classes_confirmed_ge_{CONFIRMED}": worst("classes_confirmed", "handnet_built") >= CONFIRMED
            if all(s["handnet_built"] for s in per_seed.values()) else None,
            f"pruned_coverage_ge_{COVERAGE}": worst("coverage_min", "pruned") >= COVERAGE,
            f"compiled_conv1_error_ratio_le_{COMPILED_RATIO}": max(ratios) <= COMPILED_RATIO,
            f"compiled_conv1_conv2_accuracy_ge_{COMPILED_ACCURACY}": worst("conv1_conv2_accuracy", "compiled") >= COMPILED_ACCURACY,
            f"pruned_descriptions_confirmed_ge_{DESCRIBED}": worst("description_share", "pruned") >= DESCRIBED,
        },
    })  # fmt: skip


if __name__ == "__main__":
    main()
