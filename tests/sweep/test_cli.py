"""`lepton-sim sweep`: exit codes, messages and files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from lepton_sim.cli import _Parser, build_parser
from lepton_sim.cli import main as lepton_main
from lepton_sim.errors import InputError, LeptonError
from lepton_sim.sweeps.cli import register
from sweep_fixtures import write_sweep


def _wired() -> bool:
    try:
        build_parser().parse_args(["sweep", "x.yaml"])
    except InputError:
        return False
    return True


def cli(argv: list[str]) -> int:
    """lepton-sim's own main once `sweep` is wired into it; until then register() on a parser like it."""
    if _wired():
        return lepton_main(argv)
    parser = _Parser(prog="lepton-sim")
    register(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    try:
        args: argparse.Namespace = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except LeptonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def test_sweep_writes_the_tables_and_says_what_failed(load_sweep_file: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert cli(["sweep", str(load_sweep_file), "--workers", "2", "--out", str(out), "--report"]) == 0
    captured = capsys.readouterr()
    assert "12 rows (6 points x 2 seeds), 8 ok, 4 failed" in captured.out
    assert "services.q.demand[0].rate_rps: input should be greater than 0, got -5" in captured.err
    for name in ("results.parquet", "results.csv", "journal.jsonl", "sweep.json", "report.html", "report.md"):
        assert (out / name).is_file()


@pytest.mark.parametrize(("spec", "needle"), [
    ({"grid": {"services.q.demand[3].rate_rps": [1]}}, "grid.services.q.demand[3].rate_rps: unknown key path"),
    ({"mode": "bogus"}, "sweep.yaml: mode: unknown mode 'bogus'"),
    ({"base": "absent.yaml"}, "sweep.yaml: base: base scenario not found"),
])
def test_a_bad_sweep_file_exits_2_naming_the_key_path(tmp_path: Path, base: Path, spec: dict, needle: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = write_sweep(tmp_path, {"base": base.name, **spec})
    assert cli(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_flags_exit_2(load_sweep_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["sweep", str(load_sweep_file), "--workers", "0"]) == 2
    assert cli(["sweep", str(tmp := load_sweep_file.parent / "nope.yaml")]) == 2
    assert f"{tmp}: no such sweep file" in capsys.readouterr().err


def test_a_sweep_whose_every_point_failed_exits_1(tmp_path: Path, base: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write_sweep(tmp_path, {"base": base.name, "grid": {"services.q.demand[0].rate_rps": [-1, -2]}})
    assert cli(["sweep", str(path), "--workers", "1", "--out", str(tmp_path / "out")]) == 1
    assert "every point of the sweep failed" in capsys.readouterr().err
