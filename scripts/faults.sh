#!/usr/bin/env bash
# The capture fault matrix as a table: silent/refused cameras beside a healthy one whose publisher is
# cut and resumed, a SIGSTOPped publisher, a stale-frame trickle (tests/capture/faults.py; the same
# cases run as tests in tests/capture/test_faults.py). Exits 1 when a case fails.
#
#   bash scripts/faults.sh                  # the service's capture path
#   bash scripts/faults.sh --opener opencv  # every source through OpenCV (the old path), to compare
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m tests.capture.faults "$@"
