#!/usr/bin/env bash
# Trial C: a rank-16 LoRA CLLM of SmolLM2-135M on runs/smollm2/data-code (resumable from runs/smollm2/trialC-work).
# MINUTES bounds one launch; the same command resumes from the newest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OMP_NUM_THREADS=${THREADS:-1} python -m cllm train --model smollm2-135m --data runs/smollm2/data-code \
    --out runs/smollm2/trialC --lora-rank 16 --lora-alpha 32 --lr 5e-4 --ar-text stdlib --ar-text-tokens 64 \
    --text-weight 2 --no-context-grad \
    --ar-scope block --ar-weight 1 --label-smoothing 0 --states-per-block 4 --batch-size 8 --max-steps 600 \
    --eval-prompts assets/prompts/code-heldout.jsonl --eval-count 8 --eval-max-new-tokens 64 --eval-every 25 \
    --work-dir runs/smollm2/trialC-work --save-every 25 --max-minutes ${MINUTES:-75}
