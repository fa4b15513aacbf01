#!/usr/bin/env bash
# Trial D: trial C's flags, continuing the shipped adapter (assets/models/smollm2-135m-cllm, 228 steps) instead of
# a new one: a fresh machine keeps no checkpoints, git keeps the adapter. Collect first (collect.sh; LIMIT=128 is
# trial C's data). MINUTES bounds one launch; the same command resumes from runs/smollm2/$RUN-work. Then:
#   python -m cllm pack-adapter runs/smollm2/trialD assets/models/smollm2-135m-cllm
# DATA and RUN train other data under another name (round2.sh: trial E on the CLLM's own trajectories).
set -euo pipefail
cd "$(dirname "$0")/../../.."
DATA=${DATA:-runs/smollm2/data-code}
RUN=${RUN:-trialD}
OMP_NUM_THREADS=${THREADS:-1} python -m cllm train --model smollm2-135m --data "$DATA" \
    --out "runs/smollm2/$RUN" --init-adapter assets/models/smollm2-135m-cllm \
    --lora-rank 16 --lora-alpha 32 --lr 5e-4 --ar-text stdlib --ar-text-tokens 64 \
    --text-weight 2 --no-context-grad \
    --ar-scope block --ar-weight 1 --label-smoothing 0 --states-per-block 4 --batch-size 8 --max-steps ${STEPS:-600} \
    --eval-prompts assets/prompts/code-heldout.jsonl --eval-count 8 --eval-every 25 --eval-max-new-tokens 64 \
    --work-dir "runs/smollm2/$RUN-work" --save-every 25 --max-minutes ${MINUTES:-75}
