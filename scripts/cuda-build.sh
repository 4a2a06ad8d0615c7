#!/usr/bin/env bash
# Builds and links the whole workspace with `--features cuda` on a machine that has neither a
# GPU nor a CUDA toolkit, then runs the CPU tests of that build. CI runs this (`.ci/run`) so a
# CUDA path that does not compile is caught without a GPU. The toolchain (nvcc from PyPI,
# stub link libraries) comes from scripts/cuda-env.sh. A binary linked against the stubs runs
# on the CPU (creating a CUDA device fails cleanly, so the device-parity tests check the CPU
# targets alone), and runs on the GPU for real on a machine with the NVIDIA driver and CUDA 13
# libraries (scripts/gpu-check.sh).
#
# usage: scripts/cuda-build.sh [build|test]     (default: test)
#   build: compile and link every library, test, example and benchmark with --features cuda
#   test:  build, then run the workspace's tests on the CPU against the stub libraries
set -euo pipefail
MODE=${1:-test}
cd "$(dirname "$0")/.."
start=$(date +%s)
# shellcheck source=scripts/cuda-env.sh
source scripts/cuda-env.sh

cargo build --workspace --all-targets --features "cuda full"
echo "cuda build: $(($(date +%s) - start)) s"
if [ "$MODE" = test ]; then
    LD_LIBRARY_PATH="$SCARCE_CUDA_STUBS:$CUDA_HOME/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        cargo test --workspace --features "cuda full"
    echo "cuda build and CPU tests: $(($(date +%s) - start)) s"
fi
