#!/usr/bin/env bash
# Every benchmark, one command (not run in CI): scale targets of issue 5, gene switching of issue 3,
# tool switching of issue 8, VisiumHD bin memory, selection and legend per label edit of issue 14,
# prediction metrics of issue 12.
# Each prints its naive baseline measured in the same run. Needs Xvfb (scripts/setup.sh installs it).
#   bash benchmarks/all.sh            # real shapes (~3 GB of generated data, a few minutes)
#   bash benchmarks/all.sh --quick    # small shapes for the scale part
set -euo pipefail
cd "$(dirname "$0")/.."
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/run.py --redraw "$@"
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_gene_switch.py
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_tool_switch.py
.venv/bin/python benchmarks/bench_bins.py
.venv/bin/python benchmarks/bench_legend.py
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_bin_selection.py
.venv/bin/python benchmarks/bench_predictions.py
