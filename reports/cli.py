"""``reports`` command line: ``reports run`` (the whole pipeline) and ``reports build``."""

from __future__ import annotations

import argparse
from pathlib import Path

from dissect.errors import AuditError
from dissect.runtime import run_cli

__all__ = ["main", "build_parser"]


def _widths(text: str) -> tuple[int, ...]:
    from simpleconvnet.cli import parse_widths

    try:
        return parse_widths(text)
    except AuditError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    from dissect.infra.datasets import DATASETS
    from reports.config import RunConfig
    from simpleconvnet.cli import positive_int

    d = RunConfig()
    parser = argparse.ArgumentParser(
        prog="reports", description="Run the whole audit and write the HTML/PDF report."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    r = sub.add_parser("run", help="run every stage (cached) and build the report")
    r.add_argument("--name", default=d.name, help="run name: writes runs/NAME/ (default default)")
    r.add_argument("--description", default="", help="a line shown under the report's title")
    r.add_argument("--dataset", default=d.dataset, choices=DATASETS)
    r.add_argument("--data-dir", default=None, help="folder holding the torchvision data set")
    r.add_argument("--seed", type=int, default=d.seed)
    r.add_argument("--epochs", type=positive_int, default=d.epochs, help="SimpleConvNet epochs")
    r.add_argument(
        "--widths", type=_widths, default=d.widths, help="conv widths (default 32,64,128)"
    )
    r.add_argument("--fc4", type=positive_int, default=d.fc4)
    r.add_argument("--prune-iterations", type=positive_int, default=d.prune_iterations)
    r.add_argument(
        "--prune-targets", type=_widths, default=d.prune_targets,
        help="conv widths pruning ends at (default 8,16,16; conv3 may then be dropped)",
    )  # fmt: skip
    r.add_argument(
        "--prune-criteria", type=lambda t: tuple(t.split(",")), default=d.prune_criteria,
        help="pruning scores, equally weighted (default variation,structure,superstimulus,selectivity)",
    )  # fmt: skip
    r.add_argument("--finetune-epochs", type=positive_int, default=d.finetune_epochs)
    r.add_argument("--superstimulus-steps", type=positive_int, default=d.superstimulus_steps)
    r.add_argument(
        "--runs-root", default=d.runs_root, help="folder holding the runs (default runs)"
    )
    r.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    r.add_argument("--force", action="store_true", help="re-run every stage, even unchanged ones")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    r.add_argument(
        "--nproc", type=int, default=1,
        help="run N processes on this machine through torchrun (gloo on CPU, NCCL on GPUs)",
    )  # fmt: skip
    r.set_defaults(func=cmd_run)
    b = sub.add_parser("build", help="rebuild the report of an existing run folder")
    b.add_argument("run_dir", help="run folder, e.g. runs/default")
    b.add_argument("--quiet", action="store_true")
    b.set_defaults(func=cmd_build)
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
    a.add_argument("--name", required=True, help="run name: writes runs/NAME/report/")
    a.add_argument("--description", default="", help="a line shown under the report's title")
    a.add_argument("--superstimulus-steps", type=positive_int, default=128, help="default 128")
    a.add_argument("--runs-root", default="runs", help="folder holding the runs (default runs)")
    a.set_defaults(func=cmd_audit)


def cmd_run(args: argparse.Namespace) -> int:
    import time

    from reports.config import RunConfig
    from reports.pipeline import run_pipeline
    from reports.stages import build_stages

    config = RunConfig(
        name=args.name, description=args.description, dataset=args.dataset,
        data_dir=args.data_dir, seed=args.seed, epochs=args.epochs, widths=tuple(args.widths),
        fc4=args.fc4, prune_iterations=args.prune_iterations,
        prune_targets=tuple(args.prune_targets), prune_criteria=args.prune_criteria,
        finetune_epochs=args.finetune_epochs,
        superstimulus_steps=args.superstimulus_steps, runs_root=args.runs_root,
        device=args.device,
    )  # fmt: skip
    if not args.name or "/" in args.name or args.name.startswith("."):
        raise AuditError(f"--name {args.name!r}: give a plain folder name such as default")
    t0 = time.perf_counter()
    outcomes = run_pipeline(build_stages(), config, force=args.force, quiet=args.quiet)
    reused = sum(o.status == "reused" for o in outcomes)
    from dissect import distributed as dist

    if not dist.is_main():
        return 0
    print(
        f"reports run {args.name}: {len(outcomes)} stages ({reused} reused) in "
        f"{time.perf_counter() - t0:.1f} s; report in {config.run_dir / 'report' / 'index.html'}"
    )
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from reports.build import build_report

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise AuditError(f"{run_dir} is not a folder: give a run folder such as runs/default")
    paths = build_report(run_dir, quiet=args.quiet)
    print(f"report in {paths['html']} and {paths['pdf']}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from dissect.cli_model import check_model_options, load_subject
    from reports.audit import write_audit_report

    if not args.name or "/" in args.name or args.name.startswith("."):
        raise AuditError(f"--name {args.name!r}: give a plain folder name such as mynet")
    check_model_options(args)
    out = Path(args.runs_root) / args.name / "report"
    subject = load_subject(args)
    paths = write_audit_report(
        subject, out, steps=args.superstimulus_steps, quiet=args.quiet, description=args.description
    )
    print(f"report in {paths['html']} and {paths['pdf']}")
    return 0


def _main(argv: list[str] | None) -> int:
    from simpleconvnet.launch import dispatch

    return dispatch("reports", build_parser, argv)


def main(argv: list[str] | None = None) -> int:
    raise SystemExit(run_cli(_main, argv))
