"""One tiny pipeline run shared by the report tests: tiny nets, one epoch, tiny IDX data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_mnist_folder

TINY = [
    "--dataset", "mnist", "--epochs", "1", "--widths", "4,8", "--fc4", "16",
    "--prune-iterations", "1", "--prune-targets", "2,4",
    "--finetune-epochs", "1", "--superstimulus-steps", "8", "--device", "cpu", "--quiet",
]  # fmt: skip


def run_reports(*argv: str) -> int:
    from reports.cli import _main

    return _main(list(argv))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder; its description holds markup that must come out escaped."""
    root = tmp_path_factory.mktemp("reports")
    data = make_mnist_folder(root / "data")
    runs = root / "runs"
    code = run_reports(
        "run", "--name", "tiny", "--runs-root", str(runs), "--data-dir", str(data),
        "--description", "<script>alert('x')</script> & co", *TINY,
    )  # fmt: skip
    assert code == 0
    return runs / "tiny"
