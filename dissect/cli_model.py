"""The options every ``dissect`` command shares: which network (a suite checkpoint, or a
person's own ``--model SPEC --weights FILE`` with its input spec), which images, which device.
Every option is checked before anything is loaded."""

from __future__ import annotations

import argparse

from dissect.infra.errors import AuditError
from dissect.subject import Subject

__all__ = ["add_model_options", "check_model_options", "check_inputs", "load_subject"]


def add_model_options(p: argparse.ArgumentParser, out: str | None = None) -> None:
    p.add_argument(
        "ckpt",
        nargs="?",
        help="checkpoint folder written by the suite (model.json + model.safetensors); "
        "or give --model instead",
    )
    own = p.add_argument_group("a network of your own (instead of CKPT)")
    own.add_argument(
        "--model",
        metavar="SPEC",
        help="path/to/file.py:Name or package.module:Name, a class or a factory (default: none)",
    )
    own.add_argument(
        "--weights",
        metavar="FILE",
        help=".safetensors or a PyTorch state dict (.pt/.pth), read without unpickling "
        "objects (default: none, the model's own initial weights)",
    )
    own.add_argument(
        "--model-args",
        metavar="JSON",
        help="keyword arguments for Name, a JSON object (default: none)",
    )
    own.add_argument(
        "--input",
        default="1,28,28",
        metavar="C,H,W",
        help="the model's input shape",
    )
    own.add_argument(
        "--normalize",
        metavar="MEAN,STD",
        help="input normalisation of pixels in [0, 1]: one MEAN,STD pair, or a pair per channel (default: none)",
    )
    own.add_argument(
        "--class-names",
        metavar="NAMES",
        help="comma-separated class names (default: those of --dataset)",
    )
    own.add_argument(
        "--logits",
        metavar="MODULE",
        help="module whose output is the class scores (default: the last nn.Linear called)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="images to dissect with: mnist-5k, mnist or fashion-mnist (default: the checkpoint's own, else mnist-5k)",
    )
    p.add_argument(
        "--data-dir", default=None, help="folder holding mnist or fashion-mnist (default: none)"
    )
    if out is not None:
        p.add_argument("--out", default=out, help="output folder (made if needed)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def check_model_options(args: argparse.Namespace) -> None:
    """Every model and data option, checked before anything is loaded."""
    from dissect.foreign import parse_model_args
    from dissect.infra.datasets import DATASETS
    from dissect.subject import parse_normalize, parse_shape

    if args.ckpt and args.model:
        raise AuditError("give either a checkpoint folder or --model SPEC, not both")
    if not args.ckpt and not args.model:
        raise AuditError(
            "no network given: name a checkpoint folder, or --model SPEC --weights FILE"
        )
    if args.ckpt:
        given = [
            f"--{o.replace('_', '-')}"
            for o in ("weights", "model_args", "normalize", "logits", "class_names")
            if getattr(args, o)
        ]
        if given:
            raise AuditError(f"{', '.join(given)} only apply with --model: a checkpoint carries its own")  # fmt: skip
    shape = parse_shape(args.input)
    parse_normalize(args.normalize, shape[0])
    parse_model_args(args.model_args)
    if args.dataset is not None and args.dataset not in DATASETS:
        raise AuditError(f"unknown data set {args.dataset!r}: choose one of {', '.join(DATASETS)}")


def check_inputs(args: argparse.Namespace, data: bool = False) -> None:
    """Every option a ``dissect`` command shares that can be checked without loading the
    network: the model options, the device, a checkpoint's metadata, ``--out``, and with
    ``data`` the data set's files (cheaply: their headers). Nothing is loaded or written."""
    from dissect.infra.checkpoints import read_metadata
    from dissect.infra.datasets import check_data
    from dissect.infra.runtime import check_device, check_writable

    check_model_options(args)
    check_device(args.device)
    if getattr(args, "out", None) is not None:
        check_writable(args.out)
    meta = read_metadata(args.ckpt) if args.ckpt else None
    if not data:
        return
    if meta is None:
        check_data(args.dataset or "mnist-5k", args.data_dir)
    elif args.dataset is not None:
        check_data(args.dataset, args.data_dir)
    else:  # the checkpoint's own data set, as load_checkpoint_data finds it
        own = meta.data
        if not own.get("name"):
            raise AuditError("checkpoint does not say which data set it was trained on")
        check_data(str(own["name"]), args.data_dir or own.get("data_dir"))


def load_subject(args: argparse.Namespace, with_data: bool = True, split: str = "test") -> Subject:
    """The network and the images of ``split`` named by the options (see
    :func:`add_model_options`)."""
    import torch

    from dissect.foreign import parse_model_args
    from dissect.infra.checkpoints import load_checkpoint, load_checkpoint_data
    from dissect.infra.datasets import CLASS_NAMES, load_split
    from dissect.infra.runtime import resolve_device
    from dissect.specimen import InputSpec, Specimen
    from dissect.subject import (
        fit_images,
        open_model,
        own_network_meta,
        parse_normalize,
        parse_shape,
    )

    check_model_options(args)
    device = resolve_device(args.device)
    # no test images: on the CPU, where load_split puts real ones
    empty = (
        torch.zeros(0, 1, 28, 28, device="cpu"),
        torch.zeros(0, dtype=torch.long, device="cpu"),
    )
    if args.ckpt:
        model, meta = load_checkpoint(args.ckpt, map_location=device)
        data = meta.data.get("name", "mnist-5k")
        name = args.dataset or data
        spec = InputSpec(classes=CLASS_NAMES.get(name))
        specimen = Specimen(model, spec)
        if not with_data:
            return Subject(specimen, *empty, str(args.ckpt), meta)
        if args.dataset is None:
            images, labels = load_checkpoint_data(meta, split, args.data_dir)
        else:
            images, labels = load_split(args.dataset, split, args.data_dir)
        return Subject(specimen, images, labels, str(args.ckpt), meta)
    shape = parse_shape(args.input)
    name = args.dataset or "mnist-5k"
    specimen = open_model(
        args.model,
        args.weights,
        input_shape=shape,
        normalize=parse_normalize(args.normalize, shape[0]),
        classes=args.class_names.split(",") if args.class_names else None,
        logits=args.logits,
        model_args=parse_model_args(args.model_args),
        device=device,
    )
    names = CLASS_NAMES.get(name)
    if not args.class_names and names and len(names) == specimen.num_classes:
        specimen.class_names = tuple(names)
    meta = own_network_meta(specimen, args.model, args.weights, shape, name, args.data_dir)
    if not with_data:
        return Subject(specimen, *empty, args.model, meta)
    images, labels = load_split(name, split, args.data_dir)
    images, notes = fit_images(images, specimen.spec)
    if not getattr(args, "quiet", False):
        for note in notes:
            print(f"data: {note}")
    if int(labels.max()) >= specimen.num_classes:
        raise AuditError(
            f"{name} has {int(labels.max()) + 1} classes but the model gives "
            f"{specimen.num_classes} class scores: pick the data set it was trained on"
        )
    return Subject(specimen, images, labels, args.model, meta)
