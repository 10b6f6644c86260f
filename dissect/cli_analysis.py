"""``dissect layers | contributions | labels | audit``: the microscope on the command line, on a
suite checkpoint or on a person's own network (``--model SPEC --weights FILE``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dissect.cli_model import add_model_options
from dissect.infra.runtime import positive_int, whole_number

__all__ = ["register", "write_dissection", "image_spec", "check_image"]


def image_spec(text: str) -> str:
    """``--image``: a 0-based test-set index (its range is checked once the images are
    loaded) or the path of an existing image file (an ``argparse`` type)."""
    if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
        whole_number(text, 0)
        return text
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(
            f"image file {text!r} does not exist: give a test-set index (0-based) or an image file"
        )
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a file: give a test-set index (0-based) or an image file"
        )
    return text


def check_image(spec: str) -> None:
    """An ``--image`` file opens as an image (an index is checked against the loaded images)."""
    from dissect.images import load_png

    if not spec.lstrip("-").isdigit():
        load_png(spec)


def register(sub: argparse._SubParsersAction) -> None:
    ls = sub.add_parser("layers", help="list the conv layers and the class scores",
                        description="List every conv layer by module path (shapes, parameters, the non-linearity after it) and the module that gives the class scores.")  # fmt: skip
    add_model_options(ls)
    ls.set_defaults(func=cmd_layers, check_options=check_layers)
    c = sub.add_parser("contributions", help="how one outer channel is built from the inner channels",
                       description="Write the contribution table (CSV) and the dissection figure (PNG) of one outer channel.")  # fmt: skip
    add_model_options(c, out="runs/dissect")
    c.add_argument(
        "--layer", required=True,
        help="conv layer by module path, e.g. conv2 or features.3 (required)",
    )  # fmt: skip
    c.add_argument(
        "--channel", type=positive_int, required=True, help="outer channel, 1-based (required)"
    )
    c.add_argument("--image", type=image_spec, default="0", help="test-set index (0-based) or an image file")  # fmt: skip
    c.set_defaults(func=cmd_contributions, check_options=check_with_image)
    lab = sub.add_parser("labels", help="describe every channel of every conv layer",
                         description="Describe every channel from probe responses (and first-layer Gabor fits); write labels.csv and gabor.csv.")  # fmt: skip
    add_model_options(lab, out="runs/dissect")
    lab.set_defaults(func=cmd_labels, check_options=check_layers)
    a = sub.add_parser("audit", help="explain one prediction",
                       description="Predicted class and probability, the channels that drove it, and the dissection of the strongest channel.")  # fmt: skip
    add_model_options(a, out="runs/dissect")
    a.add_argument("--image", type=image_spec, required=True, help="test-set index (0-based) or an image file (required)")  # fmt: skip
    a.add_argument("--top", type=positive_int, default=5, help="how many driving channels to list")  # fmt: skip
    a.add_argument("--layer", default=None, help="conv layer whose channels split the score (default: the last)")  # fmt: skip
    a.set_defaults(func=cmd_audit, check_options=check_with_image)


def check_layers(args: argparse.Namespace) -> None:
    """``layers`` and ``labels``: no images needed."""
    from dissect.cli_model import check_inputs

    check_inputs(args)


def check_with_image(args: argparse.Namespace) -> None:
    """``contributions`` and ``audit``: the test images and ``--image``."""
    from dissect.cli_model import check_inputs

    check_inputs(args, data=True)
    check_image(args.image)


def _inner_descriptions(specimen, layer: str) -> list[str]:
    from dissect.labels import describe_layer

    before = specimen.previous(layer)
    if before is None:
        return [f"input channel {j + 1}" for j in range(specimen.spec.channels)] if specimen.spec.channels > 1 else ["input image"]  # fmt: skip
    return describe_layer(specimen, before)["description"].tolist()


def write_dissection(model, layer: str, channel: int, image, out: Path, data=None) -> Path:
    """Contribution table (CSV) and dissection figure (PNG) of 0-based ``channel``; returns the CSV path."""
    import torch

    from dissect.contributions import contribution_table, inner_channels, layer_contributions
    from dissect.figures import dissection_figure, plt
    from dissect.infra.atomic import atomic_save
    from dissect.specimen import specimen_of

    specimen = specimen_of(model)
    descriptions = _inner_descriptions(specimen, layer)
    table = contribution_table(
        specimen, layer, channel, image, data=data, inner_descriptions=descriptions
    )
    conv = specimen.conv(layer)
    with torch.no_grad():
        x, a, bias, y = layer_contributions(specimen, layer, image, channel)
    w = conv.weight[channel].detach().cpu().numpy()
    read = [descriptions[j] for j in inner_channels(conv, channel)]
    fig = dissection_figure(x[0].cpu().numpy(), w, a[0].cpu().numpy(), y[0].cpu().numpy(), float(bias), read,
                            f"{layer} channel {channel + 1}: y = bias + sum_j a_j")  # fmt: skip
    stem = f"{layer}_channel{channel + 1}"
    atomic_save(out / f"{stem}.csv", lambda p: table.to_csv(p, index=False))
    atomic_save(out / f"{stem}.png", lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
    return out / f"{stem}.csv"


def cmd_layers(args: argparse.Namespace) -> int:
    from dissect.cli_model import load_subject
    from dissect.receptive import receptive_fields
    from dissect.specimen import as_pair

    subject = load_subject(args, with_data=False)
    s = subject.specimen
    fields = receptive_fields(s).set_index("layer")
    print(f"{type(s.model).__name__}: input {'x'.join(map(str, s.spec.shape))}, "
          f"{sum(p.numel() for p in s.model.parameters()):,} parameters")  # fmt: skip
    print(
        f"{'layer':<16} {'in':>4} {'out':>4} {'kernel':>7} {'stride':>7} {'output':>10} {'params':>9}  then"
    )
    for name in s.conv_names:
        conv = s.conv(name)
        c_out, c_in, kh, kw = conv.weight.shape
        groups = int(getattr(conv, "groups", 1))
        params = sum(p.numel() for p in conv.parameters())
        shape = "x".join(map(str, s.output_shape(name)[1:]))
        stride = "x".join(map(str, as_pair(getattr(conv, "stride", 1))))
        sees = f"{fields.loc[name, 'rf_height']}x{fields.loc[name, 'rf_width']}"
        print(f"{name:<16} {c_in * groups:>4} {c_out:>4} {f'{kh}x{kw}':>7} {stride:>7} {shape:>10} {params:>9,} {sees:>7}  "
              f"{s.activations.get(name, 'nothing (no non-linearity found)')}")  # fmt: skip
    print(f"class scores: {s.logits_name} ({s.num_classes} classes: {', '.join(s.class_names)})")
    return 0


def _check_channel(specimen, layer: str, channel: int) -> None:
    from dissect.infra.errors import AuditError

    width = int(specimen.conv(layer).weight.shape[0])
    if not 1 <= channel <= width:
        raise AuditError(f"--channel {channel}: {layer} has channels 1..{width}")


def cmd_contributions(args: argparse.Namespace) -> int:
    from dissect.cli_model import load_subject
    from dissect.images import select_image

    subject = load_subject(args)
    specimen = subject.specimen
    _check_channel(specimen, args.layer, args.channel)
    image, _, notes = select_image(args.image, subject.images, subject.labels)
    for note in notes:
        print(f"image: {note}")
    path = write_dissection(specimen, args.layer, args.channel - 1, image, Path(args.out), data=subject.images)  # fmt: skip
    print(f"contribution table: {path}\ndissection figure: {path.with_suffix('.png')}")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from dissect.cli_model import load_subject
    from dissect.steps import write_labels

    specimen = load_subject(args, with_data=False).specimen
    out = Path(args.out)
    result = write_labels(specimen, out)
    for layer, part in result.labels.groupby("layer", sort=False):
        print(f"{layer}: {part['confident'].mean():.0%} of {len(part)} channels described with confidence")  # fmt: skip
    if not result.evidence:
        kh, kw = specimen.conv(result.layer).weight.shape[2:]
        print(f"{result.layer}: {kh}x{kw} kernels have fewer pixels than a Gabor fit needs "
              "to mean anything: its channels are judged by probe responses alone")  # fmt: skip
    print(f"labels: {out / 'labels.csv'}\nGabor fits: {out / 'gabor.csv'}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from dissect.audit import explain_prediction
    from dissect.cli_model import load_subject
    from dissect.images import select_image

    subject = load_subject(args)
    specimen = subject.specimen
    if args.layer is not None:
        specimen.check_layer(args.layer)
    image, truth, notes = select_image(args.image, subject.images, subject.labels)
    for note in notes:
        print(f"image: {note}")
    explanation = explain_prediction(specimen, image, top=args.top, layer=args.layer)
    print(explanation.text(truth))
    strongest = explanation.drivers[0][0]
    path = write_dissection(specimen, explanation.layer, strongest, image, Path(args.out))
    print(f"dissection of {explanation.layer} channel {strongest + 1}: {path.with_suffix('.png')} and {path}")  # fmt: skip
    return 0
