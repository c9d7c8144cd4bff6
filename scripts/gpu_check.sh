#!/usr/bin/env bash
# CUDA checks, for a machine with an NVIDIA GPU and a CUDA build of torch; run from the repository root.
#
#   1. the CUDA tests (tests/gpu, slow ones included): CPU/GPU parity of every method's step, eager slimming vs
#      materialize on the GPU, AMP training end to end, the torch profiling backend on the GPU, DDP over NCCL;
#   2. the default recipe (the quickstart's training) on the GPU, with AMP and without, timed;
#   3. `us3l eval` of the AMP run (on CPU, as always) and `us3l profile --device cuda --backend torch` of ten
#      grid widths in fp16 and fp32.
#
# Results and logs go to ${GPU_CHECK_OUT:-runs/gpu_check}; with $OUT set (a device machine's result folder) they
# are also packed into $OUT/gpu_check.tgz, without the weights. The script runs every step, then exits 1 if any
# failed. It uses the checkout in place (PYTHONPATH), so the machine needs torch and us3l's other dependencies,
# not an install.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${GPU_CHECK_OUT:-runs/gpu_check}
rm -rf "$out" && mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
failed=()

step() {  # step NAME CMD...: run, log to $out/NAME.log, record a failure
    local name=$1
    shift
    local t0=$SECONDS
    echo "== $name: $*" >&2
    if "$@" >"$out/$name.out" 2>"$out/$name.log"; then
        echo "   ok ($((SECONDS - t0)) s)" >&2
    else
        echo "   FAILED ($((SECONDS - t0)) s); last lines of $out/$name.out and $out/$name.log:" >&2
        tail -n 15 "$out/$name.out" "$out/$name.log" >&2
        failed+=("$name")
    fi
}

{
    date -u +%FT%TZ
    git rev-parse HEAD 2>/dev/null
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn',
torch.backends.cudnn.version(), torch.cuda.get_device_name())"
    nproc
} >"$out/machine.txt" 2>&1
cat "$out/machine.txt" >&2

step tests "$py" -m pytest tests/gpu -m "slow or not slow" -n0 -p no:cacheprovider -p no:warnings -rs -v
step train_amp "$py" -m us3l train --torch-device cuda \
    --out "$out/train_amp" --overwrite --json
step train_fp32 "$py" -m us3l train --torch-device cuda \
    --set amp=false --out "$out/train_fp32" --overwrite --json
step eval "$py" -m us3l eval --ckpt "$out/train_amp" --json
step profile "$py" -m us3l profile --device cuda --backend torch --precision fp16,fp32 --points 10 \
    --ckpt "$out/train_amp" --out "$out/profiles" --json

if [ -n "${OUT:-}" ]; then
    # without the weights and training state (a device machine's files come back up to 16 MiB each)
    tar czf "$OUT/gpu_check.tgz" --exclude='*.safetensors' --exclude='*.pt' -C "$(dirname "$out")" \
        "$(basename "$out")"
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "gpu_check: failed: ${failed[*]}" >&2
    exit 1
fi
echo "gpu_check: all steps passed" >&2
