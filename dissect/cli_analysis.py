"""``dissect contributions | labels | audit``: the microscope on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("ckpt", help="checkpoint folder (model.json + model.safetensors)")
    p.add_argument("--out", default="runs/dissect", help="output folder (default runs/dissect)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("contributions", help="how one outer channel is built from the inner channels",
                       description="Write the contribution table (CSV) and the dissection figure (PNG) of one outer channel.")  # fmt: skip
    _common(c)
    c.add_argument("--layer", required=True, help="conv layer, e.g. conv2")
    c.add_argument("--channel", type=int, required=True, help="outer channel, 1-based")
    c.add_argument(
        "--image", default="0", help="test-set index (0-based) or a PNG file (default 0)"
    )
    c.set_defaults(func=cmd_contributions)
    lab = sub.add_parser("labels", help="describe every channel of every conv layer",
                         description="Describe every channel from probe responses (and first-layer Gabor fits); write labels.csv.")  # fmt: skip
    _common(lab)
    lab.set_defaults(func=cmd_labels)
    a = sub.add_parser("audit", help="explain one prediction",
                       description="Predicted class and probability, the channels that drove it, and the dissection of the strongest channel.")  # fmt: skip
    _common(a)
    a.add_argument("--image", required=True, help="test-set index (0-based) or a PNG file")
    a.add_argument(
        "--top", type=int, default=5, help="how many driving channels to list (default 5)"
    )
    a.set_defaults(func=cmd_audit)


def _load(args):
    from dissect.checkpoints import load_checkpoint, load_checkpoint_data
    from dissect.runtime import resolve_device

    model, meta = load_checkpoint(args.ckpt, map_location=resolve_device(args.device))
    images, labels = load_checkpoint_data(meta, "test")
    return model, meta, images, labels


def _inner_descriptions(model, layer: str) -> list[str]:
    from dissect.labels import describe_layer

    i = model.conv_names.index(layer)
    if i == 0:
        return ["input image"]
    return describe_layer(model, model.conv_names[i - 1])["description"].tolist()


def write_dissection(model, layer: str, channel: int, image, out: Path, data=None) -> Path:
    """Contribution table (CSV) and dissection figure (PNG) of 0-based ``channel``; returns the CSV path."""
    import torch

    from dissect.atomic import atomic_save
    from dissect.contributions import contribution_table, layer_contributions
    from dissect.figures import dissection_figure

    descriptions = _inner_descriptions(model, layer)
    table = contribution_table(
        model, layer, channel, image, data=data, inner_descriptions=descriptions
    )
    with torch.no_grad():
        x, a, bias, y = layer_contributions(model, layer, image, channel)
    w = getattr(model, layer).weight[channel].detach().cpu().numpy()
    fig = dissection_figure(x[0].cpu().numpy(), w, a[0].cpu().numpy(), y[0].cpu().numpy(), float(bias), descriptions,
                            f"{layer} channel {channel + 1}: y = bias + sum_j a_j")  # fmt: skip
    stem = f"{layer}_channel{channel + 1}"
    atomic_save(out / f"{stem}.csv", lambda p: table.to_csv(p, index=False))
    atomic_save(out / f"{stem}.png", lambda p: fig.savefig(p, format="png", dpi=100))
    return out / f"{stem}.csv"


def cmd_contributions(args: argparse.Namespace) -> int:
    from dissect.activations import check_layer
    from dissect.errors import AuditError
    from dissect.images import select_image

    model, _, images, labels = _load(args)
    check_layer(model, args.layer)
    width = int(getattr(model, args.layer).weight.shape[0])
    if not 1 <= args.channel <= width:
        raise AuditError(f"--channel {args.channel}: {args.layer} has channels 1..{width}")
    image, _, notes = select_image(args.image, images, labels)
    for note in notes:
        print(f"image: {note}")
    path = write_dissection(model, args.layer, args.channel - 1, image, Path(args.out), data=images)
    print(f"contribution table: {path}\ndissection figure: {path.with_suffix('.png')}")
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    from dissect.atomic import atomic_save
    from dissect.gabor import gabor_fit
    from dissect.labels import describe_model

    model, _, _, _ = _load(args)
    table = describe_model(model)
    first = getattr(model, model.conv_names[0]).weight.detach().cpu().numpy()
    fits = [gabor_fit(w[0]) for w in first]
    table["gabor_r2"] = [round(f.r2, 4) for f in fits] + [float("nan")] * (len(table) - len(fits))
    table["gabor_orientation"] = [round(f.orientation, 1) for f in fits] + [float("nan")] * (
        len(table) - len(fits)
    )
    table["noise_like"] = [f.noise_like for f in fits] + [False] * (len(table) - len(fits))
    out = Path(args.out) / "labels.csv"
    atomic_save(out, lambda p: table.to_csv(p, index=False))
    for layer, part in table.groupby("layer", sort=False):
        print(
            f"{layer}: {part['confident'].mean():.0%} of {len(part)} channels described with confidence"
        )
    print(f"labels: {out}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from dissect.audit import explain_prediction
    from dissect.images import select_image

    model, _, images, labels = _load(args)
    image, truth, notes = select_image(args.image, images, labels)
    for note in notes:
        print(f"image: {note}")
    explanation = explain_prediction(model, image, top=args.top)
    print(explanation.text(truth))
    strongest = explanation.drivers[0][0]
    path = write_dissection(model, explanation.layer, strongest, image, Path(args.out))
    print(
        f"dissection of {explanation.layer} channel {strongest + 1}: {path.with_suffix('.png')} and {path}"
    )
    return 0
