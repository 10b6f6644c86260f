"""The GPU check: the whole pipeline and every command once on a device, each step one JSON
line (its time, ok or not), stopping at the first failure. Run by ``benchmarks/gpu_check.sh``,
which prepares a machine that runs the suite from its source tree.

The default pipeline runs first, alone: its time is the figure the GPU check exists for, and a
session's device time may end before the rest. Each of its stages is one more JSON line as soon as
it finishes (``{"stage": ..., "seconds": ...}``, from the stage's own ``stage.json``), so a run cut
off by a time limit still says where its time went. Then the steps that do not depend on each
other run side by side, in chains: each command is its own process, as a user runs it, and on a
GPU machine a process spends most of a small step starting up (importing torch, opening CUDA). A
chain's steps run in order; the first failure anywhere stops every chain, prints that step's
output and exits 1.

    python benchmarks/gpu_check.py [--device cuda] [--work /tmp/gpu-check] [--skip-default]
        [--skip-commands]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--epochs", "1", "--widths", "8,16", "--fc4", "32", "--prune-iterations", "1",
         "--prune-targets", "4,8", "--finetune-epochs", "1", "--superstimulus-steps", "16"]  # fmt: skip
Step = tuple[str, list[str]]
Chain = list  # of Step, or of a list of chains that then run side by side


def side_by_side(chains: list[Chain]) -> int:
    """The most steps ``chains`` run at once: each chain at its widest item (a step, or chains
    that themselves run side by side)."""
    return sum(
        max(1 if isinstance(item, tuple) else side_by_side(item) for item in chain)
        for chain in chains
    )


class Runner:
    """Runs chains of steps side by side; one JSON line per finished step."""

    def __init__(self, timeout: float) -> None:
        self.timeout, self.lock, self.failed = timeout, threading.Lock(), threading.Event()
        self.running: set[subprocess.Popen[str]] = set()
        #: CPU threads each step may use (None: torch's own choice, every core)
        self.threads: int | None = None

    def emit(self, record: dict) -> None:
        with self.lock:
            print(json.dumps(record), flush=True)

    def chain(self, items: Chain) -> None:
        for item in items:
            if self.failed.is_set():
                return
            if isinstance(item, tuple):
                if not self.step(*item):
                    return
            else:
                self.run(item)

    def step(self, name: str, argv: list[str]) -> bool:
        t0 = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)} if self.threads else None
        proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, text=True, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        with self.lock:
            self.running.add(proc)
        try:
            out, _ = proc.communicate(timeout=self.timeout)
            ok, tail = proc.returncode == 0, out[-1500:]
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            ok, tail = False, f"timed out after {self.timeout:.0f} s"
        with self.lock:
            self.running.discard(proc)
        if self.failed.is_set() and not ok:
            return False  # stopped because another chain failed: not this step's fault
        record = {"step": name, "ok": ok, "seconds": round(time.perf_counter() - t0, 2)}
        if not ok:
            record["output_tail"] = tail
            self.failed.set()
            with self.lock:
                for other in self.running:
                    other.kill()
        self.emit(record)
        return ok

    def watch_stages(self, run_dir: Path, done: threading.Event) -> None:
        """One line per stage of the pipeline in ``run_dir`` as its ``stage.json`` appears (a
        stage reused from an earlier run in the same folder keeps its old file: not shown)."""
        since = time.time()
        from reports.pipeline import STAGE_FILE, read_record  # imports torch: not at start-up

        seen: set[str] = set()
        while True:
            finished = done.wait(2.0)
            for path in sorted(run_dir.glob(f"*/{STAGE_FILE}"), key=lambda p: p.stat().st_mtime):
                if path.parent.name in seen or path.stat().st_mtime < since:
                    continue
                record = read_record(path.parent, finished=False)
                if record is None:
                    continue  # being written: the next look reads it
                seen.add(path.parent.name)
                self.emit({"stage": path.parent.name, "seconds": record.get("seconds"),
                           **({"unavailable": record["unavailable"]} if "unavailable" in record else {})})  # fmt: skip
            if finished:
                return

    def run(self, chains: list[Chain]) -> bool:
        with ThreadPoolExecutor(max_workers=len(chains)) as pool:
            list(pool.map(self.chain, chains))
        return not self.failed.is_set()


def chains(work: Path, dev: list[str]) -> list[Chain]:
    """The commands and the small pipeline, as chains that run side by side."""
    runs, q = str(work / "runs"), "--quiet"
    small = work / "runs" / "small"
    scn, pruned, hand = str(work / "scn"), str(work / "pruned"), str(work / "hand")
    ckpt, weights = f"{pruned}/final", work / "example.pt"
    net = f"{ROOT / 'tests' / 'dissect' / 'foreign_nets.py'}:ExampleNet"
    mine = ["--model", net, "--weights", str(weights), "--normalize", "0.1307,0.3081"]

    def out(name: str) -> str:
        return str(work / "dissect" / name)

    # fmt: off
    pipeline = [
        ("reports run (small settings)", ["-m", "reports", "run", "--name", "small", "--runs-root", runs, *SMALL, *dev, q]),
        ("reports build", ["-m", "reports", "build", str(small), q]),
    ]
    simpleconvnet = [
        ("simpleconvnet train", ["-m", "simpleconvnet", "train", "--epochs", "1", "--widths", "8,16", "--out", scn, *dev, q]),
        ("simpleconvnet eval", ["-m", "simpleconvnet", "eval", f"{scn}/last", "--out", f"{scn}/eval", *dev, q]),
        ("simpleconvnet prune", ["-m", "simpleconvnet", "prune", f"{scn}/last", "--iterations", "1", "--targets", "4,8",
                                 "--epochs", "1", "--final-epochs", "1", "--out", pruned, *dev, q]),
        ("dissect layers", ["-m", "dissect", "layers", ckpt, *dev, q]),
        ("dissect labels", ["-m", "dissect", "labels", ckpt, "--out", out("labels"), *dev, q]),
        ("dissect contributions", ["-m", "dissect", "contributions", ckpt, "--layer", "conv2", "--channel", "1", "--out", out("contributions"), *dev, q]),
        ("dissect audit", ["-m", "dissect", "audit", ckpt, "--image", "7", "--out", out("audit"), *dev, q]),
    ]
    dissect_more = [
        ("dissect superstimuli", ["-m", "dissect", "superstimuli", ckpt, "--steps", "32", "--out", out("superstimuli"), *dev, q]),
        ("dissect explain --check", ["-m", "dissect", "explain", ckpt, "--check", "--draws", "40", "--out", out("explain"), *dev, q]),
        ("handnet build --from --compile", ["-m", "handnet", "build", "--from", ckpt, "--compile", "conv1", "--out", f"{hand}-compiled", *dev, q]),
    ]
    handnet = [
        ("handnet build", ["-m", "handnet", "build", "--out", hand, *dev, q]),
        ("handnet finetune", ["-m", "handnet", "finetune", hand, "--mode", "constrained", "--epochs", "1", "--out", f"{hand}-c", *dev, q]),
    ]
    foreign = [
        ("a person's network: save weights", ["-c", f"import torch; from dissect.foreign import import_model; "
         f"torch.manual_seed(0); torch.save(import_model({net!r}).state_dict(), {str(weights)!r})"]),
        ("dissect audit --model", ["-m", "dissect", "audit", *mine, "--image", "3", "--out", out("mine"), *dev, q]),
        ("reports audit --model", ["-m", "reports", "audit", *mine, "--name", "mine", "--runs-root", runs,
                                   "--superstimulus-steps", "16", *dev, q]),
    ]
    # The dissect steps wait for the pruned checkpoint, then run in two chains side by side.
    simpleconvnet_then: Chain = [*simpleconvnet[:3], [simpleconvnet[3:], dissect_more]]
    # fmt: on
    return [pipeline, simpleconvnet_then, handnet, foreign]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu, for a dry run")
    p.add_argument(
        "--work", default="/tmp/gpu-check", help="scratch folder (default /tmp/gpu-check)"
    )
    p.add_argument("--skip-default", action="store_true", help="leave out the default reports run")
    p.add_argument("--skip-commands", action="store_true", help="only the default reports run")
    p.add_argument("--timeout", type=float, default=600, help="seconds per step (default 600)")
    args = p.parse_args()
    import torch

    runner = Runner(args.timeout)
    cuda = torch.cuda.is_available()
    runner.emit({"step": "environment", "ok": args.device == "cpu" or cuda, "torch": torch.__version__,
                 "python": sys.version.split()[0], "cuda": cuda,
                 "gpu": torch.cuda.get_device_name(0) if cuda else None,
                 "pdf": "available" if importlib.util.find_spec("weasyprint") else "not available"})  # fmt: skip
    if args.device != "cpu" and not cuda:
        raise SystemExit(1)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    work, dev = Path(args.work), ["--device", args.device]
    # The default pipeline runs alone: beside the others it took twice as long on the GPU machine.
    default = ["-m", "reports", "run", "--name", "default", "--runs-root", str(work / "runs"), *dev, "--quiet"]  # fmt: skip
    if not args.skip_default:
        done = threading.Event()
        watcher = threading.Thread(
            target=runner.watch_stages, args=(work / "runs" / "default", done)
        )
        watcher.start()
        ok = runner.run([[("reports run (default settings)", default)]])
        done.set()
        watcher.join()
        if not ok:
            raise SystemExit(1)
    # Each step running beside others gets its share of the cores (every one of them taking
    # all 16 cores of the GPU machine, its small steps took 13 to 29 s each).
    commands = chains(work, dev)
    runner.threads = max(1, (os.cpu_count() or 1) // side_by_side(commands))
    if not args.skip_commands and not runner.run(commands):
        raise SystemExit(1)
    runner.emit({"step": "all", "ok": True, "seconds": round(time.perf_counter() - t0, 2)})


if __name__ == "__main__":
    main()
