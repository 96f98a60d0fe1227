#!/usr/bin/env bash
# Regenerate the example reports in reports/ with the committed code (about ten minutes on 2 cores: the LLM frontier plans and verifies ten points):
#   bash reports/make_examples.sh
# Each directory is what the command writes with --out (the inputs of `lepton-sim report`) plus the
# report: report.html (self-contained), report.md and the figures as PNG files.
set -euo pipefail
cd "$(dirname "$0")/.."
run() { echo "+ lepton-sim $*"; python -m lepton_sim "$@"; }

rm -rf reports/run-edge-vision reports/plan-edge-vision reports/sweep-load reports/sweep-slo-cost
run simulate scenarios/edge-vision.yaml --out reports/run-edge-vision --report
if python -m lepton_sim plan --help >/dev/null 2>&1; then
  run plan scenarios/edge-vision.yaml --verify --out reports/plan-edge-vision
  run report reports/plan-edge-vision
else
  echo "skipped the plan example: this lepton-sim has no plan command"
fi
run sweep scenarios/sweeps/load.yaml --workers 2 --out reports/sweep-load --report
run sweep scenarios/sweeps/slo-cost.yaml --workers 2 --out reports/sweep-slo-cost --report

rm -rf reports/run-llm-chat-h100 reports/run-llm-kv-pressure-l4 reports/sweep-llm-load reports/sweep-llm-tpot-frontier
run simulate scenarios/llm/chat-h100.yaml --out reports/run-llm-chat-h100 --report
run simulate scenarios/llm/kv-pressure-l4.yaml --out reports/run-llm-kv-pressure-l4 --report
run sweep scenarios/sweeps/llm-load.yaml --workers 2 --out reports/sweep-llm-load --report
run sweep scenarios/sweeps/llm-tpot-frontier.yaml --workers 2 --out reports/sweep-llm-tpot-frontier --report
