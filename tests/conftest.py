"""Say how to install what the tests need, instead of one import error per test module."""
from __future__ import annotations

import importlib.util
import os
import tempfile

import pytest

# Measured capacity tables (lepton_sim/tablecache.py) are cached in a directory of the test session's own,
# never the user's ~/.cache: every test run measures afresh, and nothing outside the run is written.
os.environ["LEPTON_SIM_CACHE"] = tempfile.mkdtemp(prefix="lepton-sim-test-cache-")

REQUIRED = ("simpy", "pulp", "highspy", "numpy", "networkx", "matplotlib", "pydantic", "yaml", "rich",
            "sklearn", "zstandard", "lz4", "pyarrow", "dask", "distributed", "hypothesis", "lepton_sim")


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(f"this Python lacks {', '.join(missing)}: install the project and its development "
                                "extras first (README): pip install -e \".[dev]\" && python -m pytest -q -n 2")
