"""`lepton-sim report`, and `simulate --out` writing what the report needs (once wired into the CLI)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from lepton_sim.cli import _Parser, build_parser
from lepton_sim.cli import main as lepton_main
from lepton_sim.errors import InputError, LeptonError
from lepton_sim.report.cli import register
from report_fixtures import ROOT, make_run


def _wired(argv: list[str]) -> bool:
    try:
        build_parser().parse_args(argv)
    except InputError:
        return False
    return True


def cli(argv: list[str]) -> int:
    """lepton-sim's own main once `report` is wired into it; until then register() on a parser like it."""
    if _wired(["report", "x"]):
        return lepton_main(argv)
    parser = _Parser(prog="lepton-sim")
    register(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    try:
        args: argparse.Namespace = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except LeptonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def test_report_writes_into_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path / "run")
    assert cli(["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "rep" / "report.html").is_file() and (tmp_path / "rep" / "report.md").is_file()
    assert not (tmp_path / "run" / "report.html").exists()


def test_report_on_a_directory_without_results_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and err.count("\n") == 1


@pytest.mark.skipif(not _wired(["simulate", "--report"]), reason="simulate --report is not wired into the CLI yet")
def test_simulate_report_writes_the_data_and_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert lepton_main(["simulate", str(ROOT / "scenarios" / "queueing" / "mm1.yaml"), "--out", str(out),
                        "--report"]) == 0
    assert {"metrics.json", "report-data.json", "report.html", "report.md"} <= {p.name for p in out.iterdir()}
    assert lepton_main(["simulate", "--report"]) == 2
    capsys.readouterr()
