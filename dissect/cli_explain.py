"""``dissect explain``: each class's reasoning in words (which last-layer channels carry it,
what builds them, what holds it back), derived on the training digits by default."""

from __future__ import annotations

import argparse
from pathlib import Path

from dissect.cli_model import add_model_options
from dissect.infra.runtime import non_negative_int, positive_int, whole_number

__all__ = ["register"]

#: The fewest random draws a check may use: below this its p-value cannot reach 0.05.
MIN_DRAWS = 20


def draws_number(text: str) -> int:
    """``--draws``: a whole number of at least :data:`MIN_DRAWS` (an ``argparse`` type)."""
    return whole_number(text, MIN_DRAWS)


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("explain", help="each class's reasoning in words",
                       description="Compose each class's reasoning from the exact decompositions and the channel descriptions; "
                       "write explain.txt (paragraphs) and explain.csv (one row per class and channel).")  # fmt: skip
    add_model_options(e, out="runs/dissect")
    e.add_argument("--class", dest="target", type=non_negative_int, default=None, help="one class, 0-based (default: every class)")  # fmt: skip
    e.add_argument("--split", choices=("train", "test"), default="train",
                   help="the images the reasoning is derived on (default train, so the test split can check it)")  # fmt: skip
    e.add_argument("--layer", default=None, help="conv layer whose channels carry the scores (default: the last)")  # fmt: skip
    e.add_argument("--top", type=positive_int, default=3, help="channels named per class")
    e.add_argument("--check", action="store_true",
                   help="check every claim on the other split against random channels")  # fmt: skip
    e.add_argument("--draws", type=draws_number, default=200, help=f"random draws per check (at least {MIN_DRAWS})")  # fmt: skip
    e.set_defaults(func=cmd_explain, check_options=check_explain)


def check_explain(args: argparse.Namespace) -> None:
    from dissect.cli_model import check_inputs

    check_inputs(args, data=True)


def cmd_explain(args: argparse.Namespace) -> int:
    from dissect.cli_model import load_subject
    from dissect.infra.errors import AuditError
    from dissect.steps import ReasoningConfig, write_reasoning

    subject = load_subject(args, split=args.split)
    if args.layer is not None:
        subject.specimen.check_layer(args.layer)
    k = subject.specimen.num_classes
    if args.target is not None and not 0 <= args.target < k:
        raise AuditError(f"--class {args.target}: the model has classes 0..{k - 1}")
    config = ReasoningConfig(
        classes=None if args.target is None else (args.target,), layer=args.layer, top=args.top
    )
    out = Path(args.out)
    result = write_reasoning(subject.specimen, subject.images, subject.labels, out, config, stem="explain")  # fmt: skip
    print(result.text)
    print(f"\nreasoning: {out / 'explain.txt'} and {out / 'explain.csv'}")
    if args.check:
        _check(args, subject.specimen, result.reasons, out)
    return 0


def _check(args: argparse.Namespace, specimen, reasons, out: Path) -> None:
    from dissect.cli_model import load_subject
    from dissect.faithfulness import check_reasoning, checks_table, scorecard
    from dissect.infra.atomic import atomic_save

    other = "test" if args.split == "train" else "train"
    held_out = load_subject(args, split=other)
    from dissect.labels import describe_model
    from dissect.strokes import check_first_layer

    checks = check_reasoning(specimen, reasons, held_out.images, held_out.labels, draws=args.draws)
    checks += check_first_layer(specimen, describe_model(specimen), held_out.images)
    table, card = checks_table(checks), scorecard(checks)
    atomic_save(out / "checks.csv", lambda p: table.to_csv(p, index=False))
    print(f"\nchecked on the {other} split against {args.draws} random draws each (p < 0.05):")
    for row in card.itertuples():
        print(f"  {row.kind}: {row.hold} of {row.claims} claims hold")
    print(f"checks: {out / 'checks.csv'}")
