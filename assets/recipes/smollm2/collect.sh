#!/usr/bin/env bash
# Collect the SmolLM2 base's Jacobi trajectories on the shipped code-training prompts (resumable: rerun it).
# Outputs go to the ignored runs/ folder; THREADS (default 1) sets the CPU threads.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=${THREADS:-1} python -m cllm collect --model smollm2-135m --prompts assets/prompts/code-train.jsonl \
    --out runs/smollm2/data-code --n 16 --max-new-tokens 256 --batch-size 8 --limit ${LIMIT:-800} --clean-period 4
