"""The GPU check: the whole pipeline and every command once on a device, each step one JSON
line (its time, ok or not), stopping at the first failure. Run by ``benchmarks/gpu_check.sh``,
which prepares a machine that runs the suite from its source tree.

    python benchmarks/gpu_check.py [--device cuda] [--work /tmp/gpu-check] [--skip-default]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--epochs", "1", "--widths", "8,16", "--fc4", "32", "--prune-iterations", "1",
         "--prune-targets", "4,8", "--finetune-epochs", "1", "--superstimulus-steps", "16"]  # fmt: skip


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def step(name: str, *argv: str, timeout: float = 600) -> None:
    """Run ``python -m argv`` (or a ``-c`` snippet); one JSON line; exit 1 on failure."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        ok, tail = done.returncode == 0, (done.stdout + done.stderr)[-1500:]
    except subprocess.TimeoutExpired:
        ok, tail = False, f"timed out after {timeout:.0f} s"
    record = {"step": name, "ok": ok, "seconds": round(time.perf_counter() - t0, 2)}
    if not ok:
        record["output_tail"] = tail
    emit(record)
    if not ok:
        raise SystemExit(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu, for a dry run")
    p.add_argument(
        "--work", default="/tmp/gpu-check", help="scratch folder (default /tmp/gpu-check)"
    )
    p.add_argument("--skip-default", action="store_true", help="leave out the default reports run")
    args = p.parse_args()
    work, dev = Path(args.work), ["--device", args.device]
    import torch

    cuda = torch.cuda.is_available()
    emit({"step": "environment", "ok": args.device == "cpu" or cuda, "torch": torch.__version__,
          "python": sys.version.split()[0], "cuda": cuda,
          "gpu": torch.cuda.get_device_name(0) if cuda else None,
          "pdf": "available" if importlib.util.find_spec("weasyprint") else "not available"})  # fmt: skip
    if args.device != "cpu" and not cuda:
        raise SystemExit(1)
    runs, q = str(work / "runs"), "--quiet"
    step("reports run (small settings)", "-m", "reports", "run", "--name", "small", "--runs-root", runs, *SMALL, *dev, q)  # fmt: skip
    small = work / "runs" / "small"
    step("reports build", "-m", "reports", "build", str(small), q)
    scn, pruned = str(work / "scn"), str(work / "pruned")
    step("simpleconvnet train", "-m", "simpleconvnet", "train", "--epochs", "1", "--out", scn, *dev, q)  # fmt: skip
    step("simpleconvnet eval", "-m", "simpleconvnet", "eval", f"{scn}/last", "--out", f"{scn}/eval", *dev, q)  # fmt: skip
    step("simpleconvnet prune", "-m", "simpleconvnet", "prune", f"{scn}/last", "--iterations", "1", "--targets", "8,16,16",
         "--epochs", "1", "--final-epochs", "1", "--out", pruned, *dev, q)  # fmt: skip
    hand = str(work / "hand")
    step("handnet build", "-m", "handnet", "build", "--out", hand, *dev, q)
    step("handnet finetune", "-m", "handnet", "finetune", hand, "--mode", "constrained", "--epochs", "1", "--out", f"{hand}-c", *dev, q)  # fmt: skip
    ckpt, out = f"{pruned}/final", str(work / "dissect")
    step("dissect layers", "-m", "dissect", "layers", ckpt, *dev, q)
    step("dissect labels", "-m", "dissect", "labels", ckpt, "--out", out, *dev, q)
    step("dissect contributions", "-m", "dissect", "contributions", ckpt, "--layer", "conv2", "--channel", "1", "--out", out, *dev, q)  # fmt: skip
    step("dissect audit", "-m", "dissect", "audit", ckpt, "--image", "7", "--out", out, *dev, q)
    step("dissect superstimuli", "-m", "dissect", "superstimuli", ckpt, "--steps", "32", "--out", out, *dev, q)  # fmt: skip
    weights = work / "example.pt"
    net = f"{ROOT / 'tests' / 'dissect' / 'foreign_nets.py'}:ExampleNet"
    step("a person's network: save weights", "-c", f"import torch; from dissect.foreign import import_model; "
         f"torch.manual_seed(0); torch.save(import_model({net!r}).state_dict(), {str(weights)!r})")  # fmt: skip
    mine = ["--model", net, "--weights", str(weights), "--normalize", "0.1307,0.3081"]
    step("dissect audit --model", "-m", "dissect", "audit", *mine, "--image", "3", "--out", out, *dev, q)  # fmt: skip
    step("reports audit --model", "-m", "reports", "audit", *mine, "--name", "mine", "--runs-root", runs,
         "--superstimulus-steps", "16", *dev, q)  # fmt: skip
    if not args.skip_default:
        step("reports run (default settings)", "-m", "reports", "run", "--name", "default", "--runs-root", runs, *dev, q)  # fmt: skip
    emit({"step": "all", "ok": True})


if __name__ == "__main__":
    main()
