#!/usr/bin/env bash
# The whole test command: set-up check, lint, format check, type check, doctests, then the test suite.
#
#   bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "== ruff check";          .venv/bin/ruff check actwatch tests benchmarks
echo "== ruff format --check"; .venv/bin/ruff format --check actwatch tests benchmarks
echo "== mypy";                .venv/bin/mypy   # the package, the tests and the benchmarks (pyproject.toml)
# Docstring examples are tests too. A clean environment, so no ACTWATCH_* override of the caller's
# changes what an example shows (the asset cache location is the only thing passed on).
echo "== doctests";            env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 \
    ${ACTWATCH_CACHE_DIR:+ACTWATCH_CACHE_DIR="$ACTWATCH_CACHE_DIR"} \
    .venv/bin/python -m pytest -q -p no:cacheprovider --doctest-modules actwatch
echo "== pytest";              .venv/bin/python -m pytest -q -ra --durations=20 "$@"
