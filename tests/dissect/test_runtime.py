"""Device choice: ``auto`` takes CUDA only when every local process can have a GPU of its own.

The GPU counts are set by hand here (this machine has no GPU); on a GPU machine the same rules
were checked for real by ``benchmarks/bench_distributed.py``.
"""

from __future__ import annotations

import pytest
import torch

from dissect.infra.errors import AuditError
from dissect.infra.runtime import resolve_device


def _gpus(monkeypatch, n: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda *a, **k: None)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # restored after the test


@pytest.mark.parametrize(
    ("gpus", "local_world", "expected"),
    [(0, None, "cpu"), (1, None, "cuda"), (1, "2", "cpu"), (2, "2", "cuda"), (4, "2", "cuda")],
)
def test_auto_device(monkeypatch, gpus, local_world, expected) -> None:
    _gpus(monkeypatch, gpus)
    if local_world is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    assert resolve_device("auto").type == expected
    assert torch.backends.cudnn.deterministic is (expected == "cuda")


def test_explicit_devices_are_checked(monkeypatch) -> None:
    _gpus(monkeypatch, 0)
    assert resolve_device("cpu").type == "cpu"
    for bad, needle in [
        ("cuda", "no CUDA GPU"),
        ("tpu", "unknown device"),
        ("meta", "unsupported"),
    ]:
        with pytest.raises(AuditError, match=needle):
            resolve_device(bad)
