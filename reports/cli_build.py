"""``reports build``: the report of a run folder, or of runs a person made with the commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from dissect.infra.errors import AuditError

__all__ = ["add_build_parser"]


def add_build_parser(sub: argparse._SubParsersAction, d, positive_int) -> None:
    b = sub.add_parser(
        "build", help="the report of a run folder, or of runs made with the commands",
        description="Rebuild RUN_DIR/report/ from the finished stages of a run folder; or, with "
        "--train/--pruned/--handnet/--constrained/--free, assemble runs/NAME/ from the folders "
        "the commands wrote (checked to belong together), run the analysis stages on them and "
        "write its report.",
    )  # fmt: skip
    b.add_argument("run_dir", nargs="?", help="run folder, e.g. runs/default (default: none)")
    from reports.adopt import ROLES

    for role in ROLES:
        b.add_argument(
            f"--{role.option}", metavar="DIR", default=None,
            help=f"folder `{role.command}` wrote, or its checkpoint (default: none)",
        )  # fmt: skip
    b.add_argument(
        "--name", default=None, help="with networks: writes RUNS_ROOT/NAME/ (default: none)"
    )
    b.add_argument("--runs-root", default=d.runs_root, help="folder holding the runs")
    b.add_argument(
        "--superstimulus-steps", type=positive_int, default=d.superstimulus_steps,
        help="with networks: optimisation steps of each superstimulus",
    )  # fmt: skip
    b.add_argument(
        "--device", default="auto", help="with networks: auto (CUDA when present), cpu or cuda"
    )
    b.add_argument("--quiet", action="store_true", help="no progress display")
    b.set_defaults(func=cmd_build, check=check_build)


def _given(args: argparse.Namespace) -> dict[str, str | None]:
    from reports.adopt import ROLES

    return {r.option: getattr(args, r.option) for r in ROLES if getattr(args, r.option)}


def check_build(args: argparse.Namespace) -> None:
    from reports.pipeline import RUN_FILE, read_record

    if _given(args):
        check_assembled(args)
        return
    if args.run_dir is None:
        raise AuditError("give a run folder (e.g. runs/default) or the networks: --train DIR ...")
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise AuditError(f"{run_dir} is not a folder: give a run folder such as runs/default")
    if not (run_dir / RUN_FILE).is_file() and read_record(run_dir / "train") is None:
        raise AuditError(
            f"{run_dir} is not a run folder (no run.json, no train/stage.json): "
            "make one with `reports run --name NAME`"
        )
    if read_record(run_dir / "train") is None:
        raise AuditError(
            f"{run_dir}: stage 'train' has not finished, so there is nothing to report: run "
            f"`reports run --name {run_dir.name} --runs-root {run_dir.parent}` first"
        )
    if (run_dir / "report").exists() and not (run_dir / "report").is_dir():
        raise AuditError(f"{run_dir / 'report'} is a file: move it away, the report goes there")


def check_assembled(args: argparse.Namespace) -> None:
    from dissect.infra.runtime import check_device, check_writable
    from reports.adopt import adopted_config, check_together, find_runs
    from reports.config import check_name

    if args.run_dir is not None:
        raise AuditError("give either a run folder or the networks (--train DIR ...), not both")
    if args.name is None:
        raise AuditError("with --train/--pruned/--handnet...: give --name NAME for runs/NAME/")
    check_name(args.name)
    check_device(args.device)
    check_writable(args.runs_root, "--runs-root")
    runs = find_runs(_given(args))
    check_together(runs)
    adopted_config(runs, args.name, args.runs_root).validate()


def cmd_assembled(args: argparse.Namespace) -> int:
    from reports.adopt import ROLES, adopted_config, adopted_stages, find_runs
    from reports.pipeline import run_pipeline

    runs = find_runs(_given(args))
    config = adopted_config(
        runs, args.name, args.runs_root, device=args.device,
        superstimulus_steps=args.superstimulus_steps,
    )  # fmt: skip
    run_pipeline(adopted_stages(runs), config, quiet=args.quiet)
    from dissect.infra import distributed as dist

    if dist.is_main():
        for role in ROLES:
            if role.option not in runs:
                print(f"not in the report: {role.stage} (make it with `{role.command}`, "
                      f"then pass --{role.option})")  # fmt: skip
        print(f"report in {config.run_dir / 'report' / 'index.html'}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from reports.build import build_report

    if _given(args):
        return cmd_assembled(args)

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise AuditError(f"{run_dir} is not a folder: give a run folder such as runs/default")
    paths = build_report(run_dir, quiet=args.quiet)
    print(f"report in {' and '.join(map(str, paths.values()))}")
    return 0
