"""Retraining after a pruning cut, until the validation accuracy has recovered, and the conv3
test (is the third conv layer only a copy of the second?), decided on the validation split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from simpleconvnet.model import SimpleConvNet
from simpleconvnet.prune_config import PruneConfig
from simpleconvnet.redundancy import COPY_CORRELATION, copy_correlation, refit_head_without
from simpleconvnet.selection import score_data
from simpleconvnet.surgery import drop_last_conv
from simpleconvnet.train import TrainConfig, evaluate, fit

__all__ = ["Accuracies", "measure", "retrain", "redundancy_step"]

Data = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Accuracies:
    """One net's accuracy on the test split (reported) and the validation split (decides)."""

    test: float
    val: float


def measure(model, test: Data, val: Data) -> Accuracies:
    return Accuracies(evaluate(model, *test).accuracy, evaluate(model, *val).accuracy)


def retrain(
    model,
    train,
    val,
    test,
    epochs: int,
    recovered: float | None,
    config: PruneConfig,
    seed: int,
    quiet: bool,
    desc: str,
) -> tuple[Accuracies, int]:
    """Retrain ``model`` in place until its validation accuracy is back within
    ``config.tolerance`` points of ``recovered`` (a fraction), for at most ``epochs`` (all of
    them when ``recovered`` is None); returns its accuracies at the end and the epochs that
    ran."""
    stop = None if recovered is None else recovered - config.tolerance / 100
    cfg = TrainConfig(epochs=epochs, lr=config.lr, seed=seed, snapshot_every=0,
                      stop_at_val_accuracy=stop)  # fmt: skip
    result = fit(model, train, test, cfg, val=val, quiet=quiet, desc=desc, dataset=config.dataset)
    # measured again: an empty validation split (a tiny data set) leaves no val column
    return Accuracies(result.final.accuracy, evaluate(model, *val).accuracy), result.epochs_run


def redundancy_step(
    model, train, val, test, config, baseline: Accuracies, with_layer: Accuracies, quiet
) -> tuple[SimpleConvNet, dict, int]:
    """Correlations of every conv layer after the first with the one before it; and, for a
    third conv layer, the net without it: fc4 refitted in closed form, then retrained (for
    all ``final_epochs``: when conv3 goes, it is the net reported). The layer goes
    when that net's validation accuracy stays within ``budget`` points of the unpruned net's
    (``baseline``); test accuracies are reported beside. Returns the net kept, the report and
    the retraining epochs."""
    data = score_data(train, config.score_images)
    report: dict[str, Any] = {
        "baseline_accuracy": baseline.test,
        "accuracy_with": with_layer.test,
        "val_baseline_accuracy": baseline.val,
        "val_accuracy_with": with_layer.val,
        "layers": {},
    }
    for layer in model.conv_names[1:]:
        best, where = copy_correlation(model, layer, data[0])
        report["layers"][layer] = {
            "mean_best_correlation": float(best.mean()),
            "best_correlation": [round(float(b), 4) for b in best],
            "best_match_in_previous_layer": [int(w) + 1 for w in where],
        }
    report["dropped"] = False
    if len(model.conv_names) < 3 or not config.drop_redundant:
        report["reason"] = (
            "no third conv layer to test" if len(model.conv_names) < 3 else "not asked"
        )
        return model, report, 0
    without = drop_last_conv(model, torch.Generator().manual_seed(config.seed))
    r2 = refit_head_without(model, without, train[0])
    right_after = measure(without, test, val)
    # its whole schedule: when conv3 goes, this net is the pruned net reported (stopped once
    # recovered, the default run's ended at 97.4 % test against 98.3 % before)
    acc, epochs = retrain(
        without, train, val, test, config.final_epochs, None, config, config.seed,
        quiet, "without conv3",
    )  # fmt: skip
    loss = (baseline.val - acc.val) * 100
    report.update(head_refit_r2=r2, accuracy_right_after_removal=right_after.test,
                  val_accuracy_right_after_removal=right_after.val, accuracy_without=acc.test,
                  val_accuracy_without=acc.val, retrain_epochs=epochs, loss_points=loss,
                  test_loss_points=(baseline.test - acc.test) * 100,
                  dropped=loss <= config.budget + 1e-9)  # fmt: skip
    mean_corr = report["layers"][model.conv_names[-1]]["mean_best_correlation"]
    verb = "dropped" if report["dropped"] else "kept"
    report["reason"] = (
        f"conv3 {verb}: a linear map of conv2's features reproduces {r2:.1%} of the variance of what "
        f"conv3 fed to fc4; without conv3 (fc4 refitted, then retrained {epochs} epoch(s)) "
        f"validation accuracy is {acc.val:.2%} against {baseline.val:.2%} unpruned ({abs(loss):.2f} points "
        f"{'lost' if loss > 0 else 'gained'}, budget {config.budget}) and {with_layer.val:.2%} pruned with conv3 "
        f"(test accuracy {acc.test:.2%}, {baseline.test:.2%} unpruned). Channel by channel, conv3's maps correlate with "
        f"their best-matching conv2 map at {mean_corr:.2f} on average: "
        + ("it copies single conv2 channels." if mean_corr >= COPY_CORRELATION
           else "it recombines conv2 rather than copying single channels.")
    )  # fmt: skip
    return (without if report["dropped"] else model), report, epochs
