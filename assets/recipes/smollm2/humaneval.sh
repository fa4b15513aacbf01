#!/usr/bin/env bash
# HumanEval (all 164 problems, n = 16, 256 new tokens) of the base, and of a CLLM when CLLM names one.
# Resumable: results are appended one line per problem to OUT.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=${THREADS:-1} python -m cllm humaneval --base smollm2-135m ${CLLM:+--cllm "$CLLM"} \
    --out ${OUT:-runs/smollm2/humaneval.jsonl}
