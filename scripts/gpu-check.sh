#!/usr/bin/env bash
# The GPU check, one command on a machine with an NVIDIA driver:
#   1. the device-parity tests (fixture tests of ops, ProtoNet, MAML, diffusion) with CUDA
#      among their targets — a run in which no CUDA device answered fails;
#   2. the protonet_step, maml_step and diffusion (UNet) benchmarks on the GPU
#      (SCARCE_DEVICE=cuda);
#   3. where PyTorch with CUDA is installed, the same workloads in PyTorch
#      (scripts/gpu_torch_bench.py), for the ratio.
# Everything it prints also goes to DIR/gpu-check.log.
#
# usage:
#   scripts/gpu-check.sh build DIR   build the release test and benchmark binaries with
#                                    --features cuda into DIR (any machine: the toolchain of
#                                    scripts/cuda-env.sh needs no GPU, only PyPI access)
#   scripts/gpu-check.sh run DIR     run DIR's binaries on this machine's GPU
#   scripts/gpu-check.sh [DIR]       both (DIR defaults to target/gpu-check)
# The binaries are built with the release profile (SCARCE_GPU_PROFILE names another, e.g.
# dev, whose build CI has already made). The GPU machine needs the driver (libcuda.so.1) and the CUDA 13 libraries the binaries
# load (cublas, cublasLt, curand, nvrtc) on its library path. Fixtures are found as the tests
# always find them: SCARCE_FIXTURES, else shared/fixtures beside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=all
case "${1:-}" in build | run) MODE=$1; shift ;; esac
DIR=${1:-target/gpu-check}
mkdir -p "$DIR/tests" "$DIR/benches"
DIR=$(cd "$DIR" && pwd)
PROFILE=${SCARCE_GPU_PROFILE:-release}

# The device-parity tests and the benchmarks of the check. They are built for the whole
# workspace (features unified as in CI's build, so CI's compiled CUDA kernels are reused).
TESTS="ops_fixtures protonet_fixtures maml_fixtures diffusion_fixtures"
BENCHES="protonet_step maml_step diffusion"

executables() { # reads cargo's JSON messages; prints the executables built
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])'
}

build() {
    # shellcheck source=scripts/cuda-env.sh
    source scripts/cuda-env.sh
    local args=()
    for t in $TESTS; do args+=(--test "$t"); done
    cargo test --workspace --profile "$PROFILE" --features "cuda full" --no-run --message-format=json "${args[@]}" |
        executables | xargs -r -I{} cp {} "$DIR/tests/"
    args=()
    for b in $BENCHES; do args+=(--bench "$b"); done
    cargo bench --workspace --profile "$PROFILE" --features "cuda full" --no-run --message-format=json "${args[@]}" |
        executables | xargs -r -I{} cp {} "$DIR/benches/"
    ls -l "$DIR/tests" "$DIR/benches"
}

run() {
    # Second-order checks need candle to keep the graph of a gradient (as .cargo/config.toml
    # sets it for cargo commands); the binaries run here without cargo.
    export CANDLE_GRAD_DO_NOT_DETACH=1
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    status=0
    for t in "$DIR"/tests/*; do
        echo "== $(basename "$t")"
        out=$("$t" --nocapture 2>&1) || status=1
        echo "$out"
        grep -q "cuda:0" <<<"$out" || { echo "FAIL $(basename "$t"): no check ran on cuda:0"; status=1; }
    done
    for b in "$DIR"/benches/*; do
        echo "== $(basename "$b") on cuda"
        SCARCE_DEVICE=cuda "$b" --bench || status=1
    done
    if python3 -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        echo "== PyTorch on the same GPU"
        python3 scripts/gpu_torch_bench.py || status=1
    else
        echo "== PyTorch with CUDA not installed here: no PyTorch figures"
    fi
    return $status
}

case $MODE in
    build) build ;;
    run) run 2>&1 | tee "$DIR/gpu-check.log"; exit "${PIPESTATUS[0]}" ;;
    all) build && { run 2>&1 | tee "$DIR/gpu-check.log"; exit "${PIPESTATUS[0]}"; } ;;
esac
