#!/usr/bin/env python3
"""Puts GpuCheck's and the PyTorch reference's JSON side by side (and the symbol check's verdict).

    python3 summarize.py OUT_DIR        # reads gpucheck.json, pytorch.json, symbols.json there; writes summary.json/.txt

Any of the three may be missing (a step that failed); the summary says so instead of failing.
"""
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        return {"_missing": "%s: %s" % (os.path.basename(path), e.__class__.__name__)}


def main(argv):
    out = argv[0] if argv else "."
    lib = load(os.path.join(out, "gpucheck.json"))
    if "_missing" in lib:
        # The full run died: run-on-gpu.sh then ran one process per family (gpucheck-<family>.json).
        parts = [load(os.path.join(out, "gpucheck-%s.json" % f)) for f in ["mlp", "cnn", "lstm", "transformer"]]
        found = [p for p in parts if "_missing" not in p]
        if found:
            merged = dict(found[0])
            merged["results"] = [r for p in found for r in p.get("results", [])]
            merged["errors"] = [{"family": "run", "error": "the full run died (%s); results from one process per family" % lib["_missing"]}] + \
                [e for p in found for e in p.get("errors", [])]
            lib = merged
    ref = load(os.path.join(out, "pytorch.json"))
    sym = load(os.path.join(out, "symbols.json"))
    lines = []
    if "_missing" in sym:
        lines.append("symbol check: no result (%s)" % sym["_missing"])
    else:
        lines.append("symbol check: %d undefined symbols of libLibTorchSharp.so; missing that matter: %d (from libtorch/libc10: %d, "
                     "of which eager: %d; from system libraries: %d); unsatisfied version needs: %s; libraries not found: %s"
                     % (sym.get("undefined_symbols", 0), sym.get("missing_that_matter", 0), sym.get("missing_torch", 0),
                        sym.get("missing_torch_eager", 0), sym.get("missing_system", 0),
                        ", ".join("%s%s" % (v["version"], " (weak)" if v["weak"] else "") for v in sym.get("unsatisfied_version_needs", [])) or "none",
                        ", ".join(n["name"] for n in sym.get("not_found_libraries", [])) or "none"))
        for mode, text in (sym.get("dlopen") or {}).items():
            lines.append("  dlopen %s: %s" % (mode, text.splitlines()[0] if text else ""))
    for name, r in (("GpuCheck", lib), ("PyTorch", ref)):
        if "_missing" in r:
            lines.append("%s: no result (%s)" % (name, r["_missing"]))
        else:
            extra = ""
            if name == "GpuCheck":
                extra = ", TorchSharp %s on libtorch %s (%s), CUDA %s, %s device(s)" % (
                    r.get("torchsharp"), r.get("libtorch"), r.get("libtorch_path"), r.get("cuda_available"), r.get("cuda_devices"))
            else:
                extra = ", torch %s (CUDA %s), %s" % (r.get("torch"), r.get("cuda_build"), r.get("gpu"))
            lines.append("%s: device %s%s; errors: %s" % (name, r.get("device"), extra,
                                                         "; ".join("%s: %s" % (e["family"], e["error"]) for e in r.get("errors", [])) or "none"))
    rows = []
    lib_by = {x["family"]: x for x in lib.get("results", [])}
    ref_by = {x["family"]: x for x in ref.get("results", [])}
    lines.append("")
    lines.append("%-12s %8s %8s %7s %8s %8s %6s" % ("family", "lib s/ep", "pt s/ep", "ratio", "lib acc", "pt acc", "epochs"))
    for family in ["mlp", "cnn", "lstm", "transformer"]:
        a, b = lib_by.get(family), ref_by.get(family)
        if not a and not b:
            continue
        la = a["median_epoch_seconds"] if a else None
        pb = b["median_epoch_seconds"] if b else None
        ratio = la / pb if la and pb else None
        rows.append({"family": family, "library_median_epoch_seconds": la, "pytorch_median_epoch_seconds": pb,
                     "ratio": round(ratio, 3) if ratio else None,
                     "library_accuracy": a["accuracy"] if a else None, "pytorch_accuracy": b["accuracy"] if b else None,
                     "epochs": (a or b)["epochs"]})

        def f(v, fmt):
            return fmt % v if v is not None else "-"
        lines.append("%-12s %8s %8s %7s %8s %8s %6s" % (family, f(la, "%.4f"), f(pb, "%.4f"), f(ratio, "%.2fx"),
                                                       f(a["accuracy"] if a else None, "%.4f"),
                                                       f(b["accuracy"] if b else None, "%.4f"), (a or b)["epochs"]))
    cpu = load(os.path.join(out, "gpucheck-cpu.json"))
    if "_missing" not in cpu:
        lines.append("")
        lines.append("GpuCheck --device cpu on this machine's libtorch (run because CUDA was unavailable): %s; errors: %s"
                     % (", ".join("%s acc %.4f" % (r["family"], r["accuracy"]) for r in cpu.get("results", [])) or "no results",
                        "; ".join("%s: %s" % (e["family"], e["error"]) for e in cpu.get("errors", [])) or "none"))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(out, "summary.txt"), "w") as fh:
        fh.write(text + "\n")
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump({"rows": rows, "gpucheck": lib, "pytorch": ref,
                   "symbols": {k: v for k, v in sym.items() if k != "missing_symbols"}}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
