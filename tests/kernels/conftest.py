"""A quick profile of this machine, measured once per test session through `kernels measure`.

BLAS is capped at one thread for the measurement (and for every direct timing compared with it):
with two threads on two cores, any other process on the machine makes OpenBLAS's second thread
wait for a scheduler slice, stalling a 15 us GEMM for 16 ms. That is contention, not model error.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lepton_sim.kernels_cli import register
from lepton_sim.profiles import Profile, load_profile

THREADS = 1


def kernels_parser() -> argparse.ArgumentParser:
    """A parser with only the `kernels` commands, as `lepton_sim.cli` registers them."""
    parser = argparse.ArgumentParser(prog="lepton-sim")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    return kernels_parser()


@pytest.fixture(scope="session")
def blas_threads() -> int:
    """BLAS threads the quick profile was measured with."""
    return THREADS


@pytest.fixture(scope="session")
def quick_profile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("profile") / "quick.json"
    args = kernels_parser().parse_args(["kernels", "measure", "--quick", "--threads", str(THREADS), "--out", str(out)])
    assert args.func(args) == 0
    return out


@pytest.fixture(scope="session")
def quick_profile(quick_profile_path: Path) -> Profile:
    return load_profile(quick_profile_path)
