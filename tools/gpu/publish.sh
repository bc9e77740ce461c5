#!/usr/bin/env bash
# Builds the GPU kit: GpuCheck published self-contained for linux-x64 (partially trimmed), without the CPU libtorch
# (the GPU machine brings PyTorch's libtorch; TorchSharp's own libLibTorchSharp.so stays), plus the data sets, packed
# as tools/gpu/kit/gpu-kit.tar.gz (ignored; carried by the device run, see README.md).
#
#   tools/gpu/publish.sh [--keep-cpu-libtorch] [--sms FILE] [--no-trim]
#
#   --keep-cpu-libtorch  also pack libtorch-cpu's natives (~500 MB unpacked: for a local CPU run of the kit only;
#                        far over the 64 MiB a device run carries)
#   --sms FILE           SMS spam collection to pack (default: ../shared/data/sms-spam/SMSSpamCollection from the
#                        repository root, then /work/shared/data/sms-spam/SMSSpamCollection)
#   --no-trim            publish untrimmed (bigger; for telling a trimming problem from anything else)
#
# Runs one dotnet publish; prints the kit's size at the end.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
keep_cpu=false
trim=true
sms=""
while [ $# -gt 0 ]; do
    case "$1" in
        --keep-cpu-libtorch) keep_cpu=true ;;
        --no-trim) trim=false ;;
        --sms) sms=${2:?--sms needs a file}; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "publish.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$sms" ]; then
    for c in "$repo/../shared/data/sms-spam/SMSSpamCollection" /work/shared/data/sms-spam/SMSSpamCollection; do
        if [ -f "$c" ]; then sms=$c; break; fi
    done
fi
[ -n "$sms" ] && [ -f "$sms" ] || { echo "publish.sh: SMS spam collection not found; pass --sms FILE" >&2; exit 2; }
fashion="$repo/data/fashion-mnist"
for f in t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    [ -f "$fashion/$f" ] || { echo "publish.sh: $fashion/$f is missing" >&2; exit 2; }
done

stage="$here/publish"
kit="$stage/gpu-kit"
rm -rf "$stage"
mkdir -p "$kit/data/fashion-mnist" "$kit/data/sms-spam" "$here/kit"

echo "== dotnet publish (self-contained linux-x64, trimmed=$trim, CPU libtorch kept=$keep_cpu)"
dotnet publish "$here/GpuCheck/GpuCheck.csproj" -c Release -p:GpuKit=true -p:GpuKitTrim=$trim \
    -p:GpuKitDropCpuLibTorch=$([ "$keep_cpu" = true ] && echo false || echo true) -o "$kit/app" -nologo -v:m

app="$kit/app"
[ -f "$app/libLibTorchSharp.so" ] || { echo "publish.sh: libLibTorchSharp.so is not in the publish output" >&2; exit 1; }
# Not needed by the check: debug files, documentation, SkiaSharp's native library (ML.NET's image loading; the check
# feeds pixels as vectors), and the runtime's debugging/tracing/alternative-GC natives (loaded only by a debugger,
# createdump, LTTng or DOTNET_GCName). The CPU libtorch is left out by the project (GpuKitDropCpuLibTorch); make sure.
find "$app" \( -name '*.pdb' -o -name '*.dbg' -o -name '*.xml' \) -delete
rm -f "$app/libSkiaSharp.so" "$app/libmscordaccore.so" "$app/libmscordbi.so" "$app/libclrgc.so" "$app/libclrgcexp.so" \
      "$app/libcoreclrtraceptprovider.so" "$app/createdump"
if [ "$keep_cpu" != true ]; then
    for f in libtorch.so libtorch_cpu.so libc10.so libtorch_global_deps.so libtorch_python.so libshm.so \
             libaoti_custom_ops.so libbackend_with_compiler.so libjitbackend_test.so libnnapi_backend.so \
             libtorchbind_test.so; do
        rm -f "$app/$f"
    done
    rm -f "$app"/libgomp*.so*
fi

cp "$fashion"/t10k-images-idx3-ubyte.gz "$fashion"/t10k-labels-idx1-ubyte.gz "$kit/data/fashion-mnist/"
cp "$sms" "$kit/data/sms-spam/SMSSpamCollection"
cp "$here/pytorch_reference.py" "$here/elf_symbols.py" "$kit/"

{
    echo "GPU kit for Microsoft.ML.DeepExtensions (tools/gpu)"
    echo "built:            $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
    echo "commit:           $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet HEAD -- src tools/gpu 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "trimmed:          $trim"
    echo "CPU libtorch:     $([ "$keep_cpu" = true ] && echo kept || echo 'removed (load PyTorch'"'"'s via LD_LIBRARY_PATH)')"
    echo "libLibTorchSharp: $(sha256sum "$app/libLibTorchSharp.so" | cut -d' ' -f1)"
    echo "SMS spam:         $sms ($(wc -l < "$sms") lines)"
    echo "files:            $(find "$kit" -type f | wc -l), $(du -sh "$kit" | cut -f1) unpacked"
} > "$kit/MANIFEST.txt"

tarball="$here/kit/gpu-kit.tar.gz"
rm -f "$tarball"
tar -C "$stage" -cf - gpu-kit | gzip -9 > "$tarball"
rm -rf "$stage"
bytes=$(stat -c %s "$tarball")
echo "== $tarball: $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.1f MiB", b / 1048576 }')); $(tar -xOzf "$tarball" gpu-kit/MANIFEST.txt | sed -n 's/^files: *//p')"
if [ "$bytes" -gt $((60 * 1024 * 1024)) ]; then
    echo "publish.sh: warning: the kit is over 60 MiB; a device run carries at most 64 MiB with the working tree" >&2
fi
