"""Launch the suite's commands under torchrun from a test: loopback, a free port, a time limit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.cli_helpers import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, nnodes_args: tuple[str, ...] = (), timeout: float = 180):
    launcher = [sys.executable, "-m", "torch.distributed.run", *nnodes_args, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        launcher, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def finish(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("distributed run hung past its time limit")
    return proc.returncode, out + err


def single_node(nproc: int, *args: str):
    port = str(free_port())
    return torchrun(
        *args,
        nnodes_args=(
            "--nnodes",
            "1",
            f"--nproc-per-node={nproc}",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            port,
        ),
    )
