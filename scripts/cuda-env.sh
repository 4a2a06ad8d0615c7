#!/usr/bin/env bash
# Sourced by scripts/cuda-build.sh and scripts/gpu-check.sh: sets up a CUDA toolchain for
# building candle's `cuda` feature on a machine with no GPU and no CUDA toolkit (after
# ../shared/cuda/cuda-check.sh). nvcc 13.4 and the CUDA headers come from PyPI wheels in a
# venv, arranged as a CUDA_HOME of symlinks; the libraries cudarc links against (libcuda,
# nvrtc, curand, cublas, cublasLt) are generated stubs whose every function returns an error.
# Exports CUDA_HOME, PATH, CUDA_COMPUTE_CAP, CUDARC_CUDA_VERSION, LIBRARY_PATH (the stubs, for
# linking) and SCARCE_CUDA_STUBS (the stub directory, for running on the CPU).
# env: SCARCE_CUDA_ROOT  toolkit venv and stubs (default ~/.cache/scarce-cuda)
#      CUDA_COMPUTE_CAP  kernels' target architecture (default 90, Hopper)
ROOT=${SCARCE_CUDA_ROOT:-$HOME/.cache/scarce-cuda}
mkdir -p "$ROOT"

# 1. nvcc + headers from PyPI (only the CUDA 13 nvcc wheel ships a real nvcc).
if [ ! -x "$ROOT/venv/bin/python" ]; then python3 -m venv "$ROOT/venv"; fi
"$ROOT/venv/bin/pip" install -q --disable-pip-version-check \
    nvidia-cuda-nvcc==13.4.92 nvidia-nvvm==13.4.92 nvidia-cuda-runtime==13.4.92 \
    nvidia-cuda-crt==13.4.92 nvidia-cuda-cccl==13.3.5.0.6
SP=$("$ROOT/venv/bin/python" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')/nvidia/cu13

# 2. A CUDA_HOME of symlinks: bin/ include/ nvvm/ lib/{libcudart.so, stubs/}.
CH=$ROOT/cuda
mkdir -p "$CH/lib/stubs"
for d in bin include nvvm; do ln -sfn "$SP/$d" "$CH/$d"; done
ln -sf "$SP/lib/libcudart.so.13" "$CH/lib/libcudart.so.13"
ln -sf libcudart.so.13 "$CH/lib/libcudart.so"
export CUDA_HOME=$CH
export PATH=$CH/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} # no nvidia-smi to ask
export CUDARC_CUDA_VERSION=13040                # the newest CUDA cudarc 0.19 knows
nvcc --version | tail -1

# 3. Stub link libraries: every function cudarc declares, returning an error status.
cudarc=$(cargo metadata -q --format-version 1 --features cuda |
    "$ROOT/venv/bin/python" -c 'import json,sys,os;m=json.load(sys.stdin);print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"]=="cudarc"))')
W=$(mktemp -d)
grep -hoE '^\s*(pub )?(unsafe )?fn (cu[A-Z]|cublas|curand|nvrtc)[A-Za-z0-9_]*\(' \
    "$cudarc"/src/{driver,nvrtc,curand,cublas,cublaslt}/sys/mod.rs |
    sed -E 's/.*fn ([A-Za-z0-9_]+)\(/\1/' | sort -u >"$W/syms"
special='^(cuGetErrorString|cuGetErrorName|nvrtcGetErrorString|cublasGetStatusString|cublasGetStatusName|cublasLtGetStatusString|cublasLtGetStatusName)$'
stub() { # name soname symbol-regex [extra C]
    { echo "${4:-}"; grep -E "$3" "$W/syms" | grep -Ev "$special" | sed 's/.*/int &(void){return 100;}/'; } >"$W/$1.c"
    cc -shared -fPIC -Wl,-soname,"$2" -o "$CH/lib/stubs/$2" "$W/$1.c"
    ln -sf "$2" "$CH/lib/stubs/$1.so"
}
stub libcuda libcuda.so.1 '^cu[A-Z]' 'int cuGetErrorString(int e,const char**s){*s="stub libcuda: no CUDA driver";return 0;} int cuGetErrorName(int e,const char**s){*s="CUDA_ERROR_NO_DEVICE";return 0;}'
stub libnvrtc libnvrtc.so.13 '^nvrtc' 'const char*nvrtcGetErrorString(int r){return "stub nvrtc";}'
stub libcurand libcurand.so.10 '^curand'
stub libcublasLt libcublasLt.so.13 '^cublasLt' 'const char*cublasLtGetStatusString(int s){return "stub cublasLt";} const char*cublasLtGetStatusName(int s){return "stub";}'
stub libcublas libcublas.so.13 '^cublas([^L]|L[^t]|$)' 'const char*cublasGetStatusString(int s){return "stub cublas";} const char*cublasGetStatusName(int s){return "stub";}'
export LIBRARY_PATH=$CH/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}
export SCARCE_CUDA_STUBS=$CH/lib/stubs
rm -rf "$W"
