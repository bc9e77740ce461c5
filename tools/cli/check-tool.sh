#!/usr/bin/env bash
# Packs the deepext CLI as a .NET tool, installs it from that package into a temporary tool path (as a user would with
# `dotnet tool install -g Microsoft.ML.DeepExtensions.Cli --add-source DIR`) and runs it: --help, compare --help, doctor,
# a 30-second comparison on UCI Adult (../shared/data) and predict with the model it saved.
# Exit 0 when all of that works. Used by .ci/run; takes about two minutes (the package carries libtorch, ~300 MB).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
version="0.0.0-toolcheck.$(date -u +%Y%m%d%H%M%S)"
echo "== pack the deepext tool $version"
dotnet pack src/Microsoft.ML.DeepExtensions.Cli/Microsoft.ML.DeepExtensions.Cli.csproj -c Release -v quiet -nologo \
    -p:PackageVersion="$version" -o "$work/feed"
ls -la "$work/feed"
echo "== dotnet tool install from the package"
dotnet tool install Microsoft.ML.DeepExtensions.Cli --tool-path "$work/tools" --add-source "$work/feed" --version "$version"
"$work/tools/deepext" --help
"$work/tools/deepext" compare --help | grep -q -- "--dataset"
"$work/tools/deepext" doctor | grep -q "Native library *: loaded"
# A parse error is reported, with a non-zero exit code, not a crash.
if "$work/tools/deepext" compare --time soon >/dev/null 2>&1; then echo "compare --time soon should fail" >&2; exit 1; fi
data="$(pwd)/../shared/data/adult/adult.csv"
if [ -f "$data" ]; then
    echo "== deepext compare (30 s) and predict on Adult"
    (cd "$work" && "$work/tools/deepext" compare --dataset "$data" --label "label(IsOver50K)" --candidates MLP,SDCA --time 30 --plain --output out)
    test -f "$work/out/best-model.zip" && test -f "$work/out/report.html"
    head -n 201 "$data" > "$work/new.csv"
    "$work/tools/deepext" predict --model "$work/out/best-model.zip" --dataset "$work/new.csv" --output "$work/predictions.csv"
    test "$(wc -l < "$work/predictions.csv")" -eq 201   # header + 200 rows
fi
echo "== the installed tool runs"
