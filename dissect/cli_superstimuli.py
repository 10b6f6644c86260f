"""``dissect superstimuli CKPT`` (or ``--model SPEC --weights FILE``): the superstimulus of every channel of a layer, or of every
class, as one image grid (PNG) with 1-based numbers and the activation reached, plus the raw
arrays (npz)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from dissect.cli_model import add_model_options
from dissect.infra.runtime import positive_int, whole_number

__all__ = ["register", "seed_number"]

#: The largest seed ``torch.Generator.manual_seed`` takes.
SEED_MAX = 2**64 - 1


def seed_number(text: str) -> int:
    """``--seed``: a whole number from 0 to :data:`SEED_MAX` (an ``argparse`` type)."""
    return whole_number(text, 0, SEED_MAX)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "superstimuli",
        help="optimise an input for every channel of a layer (or every class)",
        description="Optimise one input per channel of --layer (or per class with --classes), "
        "all in one batch; write a PNG grid and the raw arrays.",
    )
    add_model_options(p, out="runs/superstimuli")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--layer", default=None, help="conv layer by module path (default: the last)"
    )
    which.add_argument("--classes", action="store_true", help="one superstimulus per class instead")
    p.add_argument("--steps", type=positive_int, default=256, help="optimisation steps")
    p.add_argument(
        "--seed", type=seed_number, default=0, help="seed of the starting images and transforms"
    )
    p.add_argument(
        "--param", choices=("fourier", "pixels"), default="fourier", help="image parametrisation"
    )
    p.set_defaults(func=cmd_superstimuli, check_options=check_superstimuli)


def check_superstimuli(args: argparse.Namespace) -> None:
    from dissect.cli_model import check_inputs

    check_inputs(args)


def cmd_superstimuli(args: argparse.Namespace) -> int:
    import numpy as np

    from dissect.cli_model import load_subject
    from dissect.figures import image_grid, plt
    from dissect.infra.atomic import atomic_save, atomic_write_bytes
    from dissect.steps import SuperstimuliConfig, find_superstimuli

    # classes start from the training digits' mean (and, where that fails, their own mean)
    subject = load_subject(args, with_data=args.classes, split="train")
    model = subject.specimen
    config = SuperstimuliConfig(steps=args.steps, seed=args.seed, param=args.param)
    if args.classes:
        result = find_superstimuli(model, None, config, subject.images, subject.labels)
        titles = [f"class {model.class_names[k]}: p={float(a):.2f}" for k, a in enumerate(result.activation)]  # fmt: skip
        name = "classes"
    else:
        layer = args.layer or model.conv_names[-1]
        model.check_layer(layer)
        result = find_superstimuli(model, layer, config)
        titles = [
            f"{c + 1}: {float(a):.2f}{' (pre)' if u == 'pre' else ''}"
            for c, (a, u) in enumerate(zip(result.activation, result.used, strict=True))
        ]
        name = layer
    out = Path(args.out)
    shown = (
        result.images.mean(1) if result.images.shape[1] != 3 else result.images.permute(0, 2, 3, 1)
    )
    fig = image_grid(shown.numpy(), titles, f"superstimuli of {name}")
    atomic_save(out / f"superstimuli_{name}.png", lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        images=result.images.numpy(),
        activation=result.activation.numpy(),
        used=np.array(result.used),
    )
    atomic_write_bytes(out / f"superstimuli_{name}.npz", buffer.getvalue())
    print(f"superstimuli of {name}: {out / f'superstimuli_{name}.png'} and .npz")
    return 0
