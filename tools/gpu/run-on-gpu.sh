#!/usr/bin/env bash
# The one-call GPU check (tools/gpu/README.md). Runs on the lent GPU machine — no .NET, no network, PyTorch installed:
#   1. unpacks tools/gpu/kit/gpu-kit.tar.gz (publish.sh builds it; the device run carries tools/gpu/kit),
#   2. finds PyTorch's torch/lib and puts it on LD_LIBRARY_PATH, so TorchSharp loads PyTorch's libtorch*.so/libc10*.so,
#   3. checks that libLibTorchSharp.so's undefined symbols are all defined there (elf_symbols.py; names the missing),
#   4. runs GpuCheck --device cuda (MLP, CNN, LSTM, transformer with the library's defaults),
#   5. runs the same four models in plain PyTorch (pytorch_reference.py),
#   6. writes summary.txt/summary.json (summarize.py) — everything lands in $OUT.
# No step stops the others: each has its own time limit and its result (or error) is recorded.
#
# Settings (environment; the defaults are for the GPU machine):
#   OUT                  result folder (default tools/gpu/out)
#   GPU_CHECK_DEVICE     cuda (default) or cpu
#   GPU_CHECK_ARGS       extra arguments for both programs, e.g. "--limit 2000 --epochs 3" (default: all rows, each
#                        family's default epochs)
#   TORCH_LIB            libtorch folder (default: PyTorch's, from python3 -c "import torch ...")
#   PYTHON               python with torch (default python3)
#   GPU_CHECK_TIMEOUT    seconds for the GpuCheck run (default 240); PYTORCH_TIMEOUT likewise (default 180)
#   DEEPEXT_DISABLE_NATIVE_FIX=1   passed through to GpuCheck (turns the library's libstdc++ fix off; not needed normally)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${OUT:-$here/out}
mkdir -p "$OUT"
DEVICE=${GPU_CHECK_DEVICE:-cuda}
read -r -a EXTRA <<< "${GPU_CHECK_ARGS:-}"
PYTHON=${PYTHON:-python3}
GPU_CHECK_TIMEOUT=${GPU_CHECK_TIMEOUT:-240}
PYTORCH_TIMEOUT=${PYTORCH_TIMEOUT:-180}
kit_tar=${GPU_KIT:-$here/kit/gpu-kit.tar.gz}
exec > >(tee -a "$OUT/run.log") 2>&1
started=$(date +%s)
step() { echo; echo "== [$(( $(date +%s) - started ))s] $*"; }

step "environment"
{
    echo "host: $(uname -srm), $(nproc) cores"
    (command -v nvidia-smi >/dev/null && timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv) || echo "nvidia-smi: not available"
    ldd --version 2>&1 | head -1
    for lib in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /lib64/libstdc++.so.6 /usr/lib64/libstdc++.so.6; do
        if [ -e "$lib" ]; then
            echo "libstdc++: $(readlink -f "$lib"), newest GLIBCXX: $(grep -ao 'GLIBCXX_3\.4\.[0-9]*' "$lib" | sort -t. -k3 -n -u | tail -1)"
            break
        fi
    done
    timeout 120 "$PYTHON" -c "import sys, torch; print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA build', torch.version.cuda, '| cuda available', torch.cuda.is_available(), '| devices', torch.cuda.device_count(), '| cxx11 abi', torch.compiled_with_cxx11_abi())" 2>&1 || echo "python: torch import failed"
} | tee "$OUT/env.txt"

if [ -z "${TORCH_LIB:-}" ]; then
    TORCH_LIB=$(timeout 120 "$PYTHON" -c "import torch,os;print(os.path.dirname(torch.__file__)+'/lib')" 2>/dev/null | tail -1)
fi
echo "TORCH_LIB=$TORCH_LIB" | tee -a "$OUT/env.txt"
if [ -z "$TORCH_LIB" ] || [ ! -d "$TORCH_LIB" ]; then
    echo "error: PyTorch's torch/lib was not found; set TORCH_LIB" | tee -a "$OUT/env.txt"
fi
ls -la "$TORCH_LIB" 2>/dev/null | grep -E 'lib(torch|c10|gomp|cudart|shm)' | tee -a "$OUT/env.txt"
# The CUDA libraries of a pip install live in site-packages/nvidia/*/lib; libtorch_cuda.so finds them through its
# RPATH, and Python's "import torch" may preload them. Searching them too makes the .NET process see the same files
# (GPU_CHECK_NO_NVIDIA_PATH=1 leaves them out).
nvidia_dirs=()
if [ -n "$TORCH_LIB" ] && [ "${GPU_CHECK_NO_NVIDIA_PATH:-0}" != 1 ]; then
    for d in "$TORCH_LIB"/../../nvidia/*/lib "$TORCH_LIB"/../../nvidia/lib; do
        [ -d "$d" ] && nvidia_dirs+=("$(cd "$d" && pwd)")
    done
fi
echo "NVIDIA library folders: ${nvidia_dirs[*]:-(none)}" | tee -a "$OUT/env.txt"

step "unpack $kit_tar"
if [ -n "${GPU_CHECK_WORK:-}" ]; then work=$GPU_CHECK_WORK; mkdir -p "$work"; own_work=false
else work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-kit.XXXXXX"); own_work=true; fi
if ! tar -C "$work" -xzf "$kit_tar"; then
    echo "error: cannot unpack $kit_tar (was publish.sh run, and tools/gpu/kit carried?)"
    "$PYTHON" "$here/summarize.py" "$OUT"
    exit 1
fi
kit="$work/gpu-kit"
app="$kit/app"
cat "$kit/MANIFEST.txt"
cp "$kit/MANIFEST.txt" "$OUT/kit-manifest.txt"

step "symbol check: libLibTorchSharp.so against $TORCH_LIB"
nvidia_args=()
for d in ${nvidia_dirs[@]+"${nvidia_dirs[@]}"}; do nvidia_args+=(--lib-dir "$d"); done
timeout 180 "$PYTHON" "$here/elf_symbols.py" "$app/libLibTorchSharp.so" --lib-dir "$TORCH_LIB" ${nvidia_args[@]+"${nvidia_args[@]}"} --dlopen \
    --json "$OUT/symbols.json" > "$OUT/symbols.txt" 2>&1
symbols_rc=$?
head -c 20000 "$OUT/symbols.txt"
echo "(elf_symbols.py exit $symbols_rc; full list: symbols.txt / symbols.json)"

ld_path=$TORCH_LIB
for d in ${nvidia_dirs[@]+"${nvidia_dirs[@]}"}; do ld_path="$ld_path:$d"; done
export LD_LIBRARY_PATH="$ld_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" | tee -a "$OUT/env.txt"
export XDG_CACHE_HOME="$work/cache"          # the native fix's private copy (if it makes one) goes here
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
data=(--data "$kit/data/fashion-mnist" --sms "$kit/data/sms-spam/SMSSpamCollection")

step "GpuCheck --device $DEVICE ${GPU_CHECK_ARGS:-}"
timeout -k 10 "$GPU_CHECK_TIMEOUT" "$app/GpuCheck" --device "$DEVICE" "${data[@]}" --json "$OUT/gpucheck.json" ${EXTRA[@]+"${EXTRA[@]}"} \
    > "$OUT/gpucheck.txt" 2>&1
gpucheck_rc=$?
cat "$OUT/gpucheck.txt" | head -c 40000
echo "(GpuCheck exit $gpucheck_rc)"

if [ ! -s "$OUT/gpucheck.json" ] && [ "$gpucheck_rc" -ne 124 ] && [ "$gpucheck_rc" -ne 137 ]; then
    # Died without its JSON (a native abort such as "symbol lookup error", a segfault): one process per family to find
    # which ones work.
    for family in mlp cnn lstm transformer; do
        step "GpuCheck --families $family (isolating the crash)"
        timeout -k 10 90 "$app/GpuCheck" --device "$DEVICE" "${data[@]}" --families "$family" --json "$OUT/gpucheck-$family.json" \
            ${EXTRA[@]+"${EXTRA[@]}"} > "$OUT/gpucheck-$family.txt" 2>&1
        echo "(exit $?)"; tail -n 15 "$OUT/gpucheck-$family.txt"
    done
fi
if [ "$gpucheck_rc" -eq 3 ] && [ "$DEVICE" = cuda ]; then
    # CUDA not available to TorchSharp: does TorchSharp work on PyTorch's libtorch at all? A tiny CPU run says.
    step "GpuCheck --device cpu (CUDA was not available: does PyTorch's libtorch work on the CPU?)"
    timeout -k 10 120 "$app/GpuCheck" --device cpu "${data[@]}" --limit 500 --epochs 2 --threads 4 --json "$OUT/gpucheck-cpu.json" \
        > "$OUT/gpucheck-cpu.txt" 2>&1
    echo "(exit $?)"; tail -n 12 "$OUT/gpucheck-cpu.txt"
fi

step "pytorch_reference.py --device $DEVICE ${GPU_CHECK_ARGS:-}"
timeout -k 10 "$PYTORCH_TIMEOUT" "$PYTHON" "$here/pytorch_reference.py" --device "$DEVICE" "${data[@]}" --json "$OUT/pytorch.json" \
    ${EXTRA[@]+"${EXTRA[@]}"} > "$OUT/pytorch.txt" 2>&1
pytorch_rc=$?
head -c 20000 "$OUT/pytorch.txt"
echo "(pytorch_reference.py exit $pytorch_rc)"

step "summary"
"$PYTHON" "$here/summarize.py" "$OUT"
echo "exit codes: elf_symbols=$symbols_rc gpucheck=$gpucheck_rc pytorch=$pytorch_rc" | tee -a "$OUT/summary.txt"
echo "total $(( $(date +%s) - started ))s; results in $OUT"
[ "$own_work" = true ] && rm -rf "$work"
[ "$gpucheck_rc" -eq 0 ]
