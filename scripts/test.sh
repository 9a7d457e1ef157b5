#!/usr/bin/env bash
# The whole test command: set-up check, lint, format check, type check, then the test suite.
#
#   bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "== ruff check";          .venv/bin/ruff check actwatch tests benchmarks
echo "== ruff format --check"; .venv/bin/ruff format --check actwatch tests benchmarks
echo "== mypy";                .venv/bin/mypy
echo "== pytest";              .venv/bin/python -m pytest -q -ra --durations=20 "$@"
