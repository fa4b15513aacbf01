#!/usr/bin/env bash
# Trial E, a second round by hand (cllm/training/rounds.py's idea, resumable across launches on CPU): collect the
# shipped CLLM's own Jacobi trajectories on the next LIMIT code-training prompts (129-256: round 1 used the
# first 128), then fine-tune the shipped adapter on them with trial C's flags (trainD.sh). Every step resumes:
# the prompt file is rewritten identically, collect resumes its shards, train resumes from
# runs/smollm2/trialE-work. THREADS sets CPU threads, MINUTES bounds one training launch. Then:
#   python -m cllm pack-adapter runs/smollm2/trialE assets/models/smollm2-135m-cllm
set -euo pipefail
cd "$(dirname "$0")/../../.."
LIMIT=${LIMIT:-128}
mkdir -p runs/smollm2
sed -n "$((128 + 1)),$((128 + LIMIT))p" assets/prompts/code-train.jsonl > runs/smollm2/prompts-round2.jsonl
OMP_NUM_THREADS=${THREADS:-1} python -m cllm collect --model smollm2-135m-cllm \
    --prompts runs/smollm2/prompts-round2.jsonl --out runs/smollm2/data-round2 \
    --n 16 --max-new-tokens 256 --batch-size 8 --clean-period 4
DATA=runs/smollm2/data-round2 RUN=trialE exec bash assets/recipes/smollm2/trainD.sh
