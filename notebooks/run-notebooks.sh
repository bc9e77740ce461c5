#!/usr/bin/env bash
# Packs the library into artifacts/packages (a local NuGet feed) and runs notebooks headless with dotnet-repl.
#
#   notebooks/run-notebooks.sh [--no-build] [NOTEBOOK.ipynb ...]     (default: every notebooks/*.ipynb)
#
# Executed copies go to notebooks/out/<name>.ipynb (kernel log: notebooks/out/<name>.log) and one line per notebook,
# "<name><TAB>passed|failed<TAB>seconds", to notebooks/out/results.tsv. Exits non-zero when any notebook fails: when
# dotnet-repl exits non-zero (it returns 2 when a cell fails), writes no output notebook, or the output has an error
# output or a code cell that did not run.
#
# Every run packs a fresh version, <Version>-local.<UTC timestamp>, and the notebooks reference
# `Microsoft.ML.DeepExtensions, *-*` (the newest version): a re-packed library can never be shadowed by a stale copy of
# the same version in the NuGet package cache (~/.nuget/packages), and nothing outside the repository is deleted.
#
# --no-build: pack what `dotnet build -c Release` already built (CI builds first).
# Environment: NOTEBOOK_TIMEOUT (seconds per notebook, default 900).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

build=1
notebooks=()
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) notebooks+=("$(cd "$(dirname "$arg")" && pwd)/$(basename "$arg")") ;;
    esac
done
if [ ${#notebooks[@]} -eq 0 ]; then
    shopt -s nullglob
    notebooks=("$repo"/notebooks/*.ipynb)
    shopt -u nullglob
fi
if [ ${#notebooks[@]} -eq 0 ]; then
    echo "run-notebooks: no notebooks/*.ipynb to run" >&2
    exit 1
fi
command -v jq >/dev/null || { echo "run-notebooks: jq is required (apt-get install -y jq)" >&2; exit 1; }

feed="$repo/artifacts/packages"
out="$repo/notebooks/out"
timeout_s="${NOTEBOOK_TIMEOUT:-900}"
mkdir -p "$feed" "$out"
: > "$out/results.tsv"

echo "== dotnet tool restore"
dotnet tool restore >/dev/null

# 1. Pack the projects under src/ (those with IsPackable=true: the library, AutoML, Interactive) into the local feed, under a version no earlier run used.
base_version="$(dotnet msbuild src/Microsoft.ML.DeepExtensions/Microsoft.ML.DeepExtensions.csproj -getProperty:Version)"
version="${base_version%%-*}-local.$(date -u +%Y%m%d%H%M%S)"
echo "== pack $version -> ${feed#"$repo"/}"
if [ "$build" -eq 1 ]; then
    dotnet build Microsoft.ML.DeepExtensions.sln -c Release -v quiet -nologo
fi
# Only this run's packages stay in the feed: `*-*` takes the newest, and a stable X.Y.Z would outrank X.Y.Z-local.*.
rm -f "$feed"/*.nupkg "$feed"/*.snupkg
for project in src/*/*.csproj; do
    # The CLI is a .NET tool (~300 MB with libtorch), not a library the notebooks reference; tools/cli/check-tool.sh packs it.
    [[ "$project" == *Cli* ]] && continue
    dotnet pack "$project" -c Release --no-build --no-restore -v quiet -nologo \
        -p:PackageVersion="$version" -p:PackageOutputPath="$feed"
done
# The library and its companion packages (AutoML comparison, Interactive formatters) must all be in the feed.
for package in Microsoft.ML.DeepExtensions Microsoft.ML.DeepExtensions.AutoML Microsoft.ML.DeepExtensions.Interactive; do
    ls "$feed/$package.$version.nupkg" >/dev/null
done

# 2. Run each notebook; the kernel starts in notebooks/ (as in an editor), the notebooks find the feed from there.
# jq: collapse the package-restore progress updates dotnet-repl records as separate outputs, then report failures.
tidy='def progress: .output_type == "display_data"
        and (((.data["text/html"] // "") | if type == "array" then join("") else . end)
             | test("<strong>(Installing Packages|Restore sources|Installed Packages)</strong>"));
      .cells |= map(if .cell_type == "code" then .outputs |= reduce .[] as $o ([];
          if ($o | progress) and length > 0 and (.[-1] | progress) then .[:-1] + [$o] else . + [$o] end) else . end)'
report='[.cells[] | select(.cell_type == "code")] | to_entries
        | (map(select(.value.metadata.dotnet_repl_cellExecutionEndTime == null)) | length) as $notrun
        | "cells=\(length) notrun=\($notrun)",
          (.[] | .key as $i | .value.outputs[]? | select(.output_type == "error")
               | "error in code cell \($i + 1): \((.evalue // .ename // "error") | split("\n")[0] | .[0:300])")'

failed=0
for nb in "${notebooks[@]}"; do
    name="$(basename "$nb" .ipynb)"
    result="$out/$name.ipynb"
    rm -f "$result"
    echo "== $name"
    start=$(date +%s)
    set +e
    (cd "$repo/notebooks" && timeout "$timeout_s" dotnet repl --run "$nb" --exit-after-run --output-path "$result") \
        > "$out/$name.log" 2>&1 < /dev/null
    rc=$?
    set -e
    seconds=$(( $(date +%s) - start ))

    problems=()
    if [ "$rc" -eq 124 ]; then problems+=("timed out after ${timeout_s}s (NOTEBOOK_TIMEOUT)")
    elif [ "$rc" -ne 0 ]; then problems+=("dotnet-repl exited with $rc"); fi
    if [ -s "$result" ] && jq -e . "$result" >/dev/null 2>&1; then
        jq "$tidy" "$result" > "$result.tmp" && mv "$result.tmp" "$result"
        mapfile -t lines < <(jq -r "$report" "$result")
        summary="${lines[0]}"                        # cells=N notrun=M
        cells="${summary#cells=}"; cells="${cells%% *}"
        notrun="${summary##*notrun=}"
        [ "$notrun" -eq 0 ] || problems+=("$notrun of $cells code cells did not run")
        problems+=("${lines[@]:1}")
    else
        cells="?"
        problems+=("no output notebook written (see ${out#"$repo"/}/$name.log)")
    fi

    if [ ${#problems[@]} -eq 0 ]; then
        printf '   passed: %s code cells in %ss -> %s\n' "$cells" "$seconds" "${result#"$repo"/}"
        printf '%s\tpassed\t%s\n' "$name" "$seconds" >> "$out/results.tsv"
    else
        failed=$((failed + 1))
        printf '   FAILED after %ss (%s code cells) -> %s\n' "$seconds" "$cells" "${result#"$repo"/}"
        printf '     %s\n' "${problems[@]}"
        printf '%s\tfailed\t%s\n' "$name" "$seconds" >> "$out/results.tsv"
    fi
done

# The notebooks load TorchSharp from the NuGet cache: its libLibTorchSharp.so must still be the package's own bytes
# (the library loads a patched private copy; it never writes the shared file).
packages="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
shopt -s nullglob
for nupkg in "$packages"/torchsharp/*/torchsharp.*.nupkg; do
    native="$(dirname "$nupkg")/runtimes/linux-x64/native/libLibTorchSharp.so"
    [ -f "$native" ] || continue
    if [ "$(unzip -p "$nupkg" runtimes/linux-x64/native/libLibTorchSharp.so | sha256sum | cut -d' ' -f1)" = "$(sha256sum < "$native" | cut -d' ' -f1)" ]; then
        echo "== NuGet cache: $native is byte-identical to its package"
        printf 'nuget-cache-unchanged\tpassed\t0\n' >> "$out/results.tsv"
    else
        echo "== NuGet cache: $native differs from its package (something wrote the shared file)" >&2
        printf 'nuget-cache-unchanged\tfailed\t0\n' >> "$out/results.tsv"
        failed=$((failed + 1))
    fi
done
shopt -u nullglob

total=${#notebooks[@]}
echo "== notebooks: $((total - failed)) of $total succeeded"
[ "$failed" -eq 0 ]
