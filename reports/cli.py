"""``reports`` command line: ``reports run`` (the whole pipeline) and ``reports build``."""

from __future__ import annotations

import argparse
from pathlib import Path

from dissect.infra.errors import AuditError
from dissect.infra.runtime import CliParser, run_cli
from reports.cli_build import add_build_parser

__all__ = ["main", "build_parser"]


def _widths(text: str) -> tuple[int, ...]:
    from simpleconvnet.cli import parse_widths

    try:
        return parse_widths(text)
    except AuditError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _targets(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of whole numbers, e.g. 8,16,16"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every width must be at least 1")
    return values


def _criteria(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    from dissect.infra.datasets import DATASETS
    from reports.config import RunConfig
    from simpleconvnet.cli import positive_int, seed_number

    d = RunConfig()
    parser = CliParser(
        prog="reports", description="Run the whole audit and write the HTML/PDF report."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    r = sub.add_parser(
        "run", help="run every stage (cached) and build the report",
        description="Train, prune, hand-build, fine-tune and dissect; write runs/NAME/report/. "
        "Every option is checked before the first stage starts.",
    )  # fmt: skip
    r.add_argument("--name", default=d.name, help="run name: writes runs/NAME/ (a plain name)")
    r.add_argument("--description", default="", help="a line shown under the report's title")
    r.add_argument("--dataset", default=d.dataset, choices=DATASETS, help="data set")
    r.add_argument(
        "--data-dir", default=None,
        help="folder holding MNIST/raw or FashionMNIST/raw (plain or .gz) or the four "
        "*-ubyte.gz files; only read",
    )  # fmt: skip
    r.add_argument("--seed", type=seed_number, default=d.seed, help="seed of every stage")
    r.add_argument("--epochs", type=positive_int, default=d.epochs, help="SimpleConvNet epochs")
    r.add_argument("--widths", type=_widths, default=d.widths, help="SimpleConvNet conv widths")
    r.add_argument("--fc4", type=positive_int, default=d.fc4, help="width of fc4")
    r.add_argument(
        "--prune-iterations", type=positive_int, default=d.prune_iterations, help="pruning cuts"
    )
    r.add_argument(
        "--prune-targets", type=_targets, default=None,
        help="conv widths pruning ends at, each at most its --widths (default 8,16,16, "
        "cut to the number of --widths; conv3 may then be dropped)",
    )  # fmt: skip
    r.add_argument(
        "--prune-criteria", type=_criteria, default=d.prune_criteria,
        help="pruning scores, equally weighted",
    )  # fmt: skip
    r.add_argument(
        "--finetune-epochs", type=positive_int, default=d.finetune_epochs,
        help="HandNet fine-tuning epochs (each mode)",
    )  # fmt: skip
    r.add_argument(
        "--superstimulus-steps", type=positive_int, default=d.superstimulus_steps,
        help="optimisation steps of each superstimulus",
    )  # fmt: skip
    r.add_argument("--runs-root", default=d.runs_root, help="folder holding the runs")
    r.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    r.add_argument("--force", action="store_true", help="re-run every stage, even unchanged ones")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    r.add_argument(
        "--nproc", type=positive_int, default=1,
        help="run N processes on this machine through torchrun (gloo on CPU, NCCL on GPUs)",
    )  # fmt: skip
    r.set_defaults(func=cmd_run, check=check_run)
    add_build_parser(sub, d, positive_int)
    _audit_parser(sub, positive_int)
    return parser


def _audit_parser(sub: argparse._SubParsersAction, positive_int) -> None:
    from dissect.cli_model import add_model_options

    a = sub.add_parser(
        "audit", help="the report of one network (yours: --model SPEC --weights FILE)",
        description="Dissect one network (a suite checkpoint, or --model SPEC --weights FILE) and write "
        "runs/NAME/report/index.html and report.pdf with every section that needs no comparison.",
    )  # fmt: skip
    add_model_options(a)
    a.add_argument("--name", required=True, help="run name: writes runs/NAME/report/ (required)")
    a.add_argument("--description", default="", help="a line shown under the report's title")
    a.add_argument(
        "--superstimulus-steps", type=positive_int, default=128,
        help="optimisation steps of each superstimulus",
    )  # fmt: skip
    a.add_argument("--runs-root", default="runs", help="folder holding the runs")
    a.set_defaults(func=cmd_audit, check=check_audit)


def run_config(args: argparse.Namespace):
    """The :class:`RunConfig` the options describe (``--prune-targets`` defaults to the
    default targets cut to the number of ``--widths``)."""
    from reports.config import RunConfig

    widths = tuple(args.widths)
    targets = args.prune_targets
    if targets is None:
        targets = RunConfig().prune_targets[: len(widths)]
    return RunConfig(
        name=args.name, description=args.description, dataset=args.dataset,
        data_dir=args.data_dir, seed=args.seed, epochs=args.epochs, widths=widths,
        fc4=args.fc4, prune_iterations=args.prune_iterations,
        prune_targets=tuple(targets), prune_criteria=tuple(args.prune_criteria),
        finetune_epochs=args.finetune_epochs,
        superstimulus_steps=args.superstimulus_steps, runs_root=args.runs_root,
        device=args.device,
    )  # fmt: skip


def check_run(args: argparse.Namespace) -> None:
    from dissect.infra.runtime import check_writable

    run_config(args).validate()
    check_writable(args.runs_root, "--runs-root")


def cmd_run(args: argparse.Namespace) -> int:
    import time

    from reports.pipeline import run_pipeline
    from reports.stages import build_stages

    config = run_config(args).validate()
    t0 = time.perf_counter()
    outcomes = run_pipeline(build_stages(), config, force=args.force, quiet=args.quiet)
    reused = sum(o.status == "reused" for o in outcomes)
    from dissect.infra import distributed as dist

    if not dist.is_main():
        return 0
    print(
        f"reports run {args.name}: {len(outcomes)} stages ({reused} reused) in "
        f"{time.perf_counter() - t0:.1f} s; report in {config.run_dir / 'report' / 'index.html'}"
    )
    return 0


def check_audit(args: argparse.Namespace) -> None:
    from dissect.cli_model import check_model_options
    from dissect.infra.datasets import check_data
    from dissect.infra.runtime import check_device, check_writable
    from reports.config import check_name

    check_name(args.name)
    check_model_options(args)
    check_device(args.device)
    check_writable(Path(args.runs_root) / args.name / "report", "--runs-root")
    if args.ckpt:
        from dissect.infra.checkpoints import read_metadata

        data = read_metadata(args.ckpt).data
        name = args.dataset or data.get("name") or "mnist-5k"
        check_data(name, args.data_dir or (None if args.dataset else data.get("data_dir")))
    else:
        check_data(args.dataset or "mnist-5k", args.data_dir)


def cmd_audit(args: argparse.Namespace) -> int:
    from dissect.cli_model import load_subject
    from reports.audit import write_audit_report

    out = Path(args.runs_root) / args.name / "report"
    subject = load_subject(args)
    paths = write_audit_report(
        subject, out, steps=args.superstimulus_steps, quiet=args.quiet, description=args.description
    )
    print(f"report in {' and '.join(map(str, paths.values()))}")
    return 0


def _main(argv: list[str] | None) -> int:
    from simpleconvnet.launch import dispatch

    return dispatch("reports", build_parser, argv)


def main(argv: list[str] | None = None) -> int:
    raise SystemExit(run_cli(_main, argv))
