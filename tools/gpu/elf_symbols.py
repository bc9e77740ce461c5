#!/usr/bin/env python3
"""Which dynamic symbols of a shared library (libLibTorchSharp.so) the libraries it would load do not define.

    python3 elf_symbols.py TARGET.so [--lib-dir DIR]... [--json FILE] [--dlopen] [--max-list N]

Resolves TARGET's DT_NEEDED closure the way the dynamic loader does (the --lib-dir folders first, as LD_LIBRARY_PATH
would be, then $LD_LIBRARY_PATH, then each object's DT_RUNPATH/DT_RPATH with $ORIGIN expanded, then the system
folders), collects every symbol those objects define, and lists TARGET's undefined symbols that none of them defines:
mangled and demangled (c++filt, when present), FUNC/OBJECT, and how TARGET's relocations use them — "lazy" (PLT only:
the process dies with "symbol lookup error" only when a function that calls it runs) or "eager" (GLOB_DAT/64 & co.:
the library fails to load). Also lists symbol-version needs (GLIBCXX_3.4.32, ...) that the resolved libraries do not
define, flagged weak when the need is marked weak (as the library's native fix does), and DT_NEEDED entries that were
not found anywhere. Pure Python (no pyelftools); ELF64 little-endian only.

--dlopen also loads TARGET in a child Python with RTLD_NOW and with RTLD_LAZY (ctypes; LD_LIBRARY_PATH as given to
this script plus the --lib-dir folders) and prints the loader's own message: the real answer to "does it load".

Exit status: 0 when every non-weak undefined symbol and every non-weak version need is satisfied, 1 otherwise, 2 on
usage or file errors.
"""
import argparse
import json
import mmap
import os
import shutil
import struct
import subprocess
import sys

SHT_DYNSYM, SHT_DYNAMIC, SHT_RELA = 11, 6, 4
SHT_GNU_VERSYM, SHT_GNU_VERNEED, SHT_GNU_VERDEF = 0x6FFFFFFF, 0x6FFFFFFE, 0x6FFFFFFD
DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_FLAGS, DT_FLAGS_1 = 1, 15, 29, 30, 0x6FFFFFFB
STB_NAMES = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK", 10: "UNIQUE"}
STT_NAMES = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS", 10: "IFUNC"}
R_X86_64_JUMP_SLOT = 7
VER_FLG_WEAK = 0x2
SYSTEM_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
               "/usr/local/lib"]


class ElfError(Exception):
    pass


class Elf:
    """The dynamic-linking view of one ELF64 little-endian shared object."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            try:
                m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as e:
                raise ElfError("%s: cannot map (%s)" % (path, e))
        try:
            self._parse(m)
        finally:
            m.close()

    def _parse(self, m):
        if m[:4] != b"\x7fELF":
            raise ElfError("%s is not an ELF file" % self.path)
        if m[4] != 2 or m[5] != 1:
            raise ElfError("%s is not ELF64 little-endian" % self.path)
        e_shoff, = struct.unpack_from("<Q", m, 0x28)
        e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", m, 0x3A)
        if e_shoff == 0 or e_shnum == 0:
            raise ElfError("%s has no section headers" % self.path)
        sections = []
        for i in range(e_shnum):
            sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, sh_addralign, sh_entsize = \
                struct.unpack_from("<IIQQQQIIQQ", m, e_shoff + i * e_shentsize)
            sections.append({"type": sh_type, "offset": sh_offset, "size": sh_size, "link": sh_link,
                             "info": sh_info, "entsize": sh_entsize})

        def cstr(blob, off):
            end = blob.find(b"\0", off)
            return blob[off:end if end >= 0 else len(blob)].decode("utf-8", "replace")

        def data(sec):
            return m[sec["offset"]:sec["offset"] + sec["size"]]

        by_type = {}
        for idx, s in enumerate(sections):
            by_type.setdefault(s["type"], []).append((idx, s))

        # Dynamic section: NEEDED, RUNPATH/RPATH, BIND_NOW.
        self.needed, self.runpath, self.rpath, self.bind_now = [], [], [], False
        for _, dyn in by_type.get(SHT_DYNAMIC, []):
            dstr = data(sections[dyn["link"]])
            blob = data(dyn)
            for off in range(0, len(blob) - 15, 16):
                tag, val = struct.unpack_from("<qQ", blob, off)
                if tag == 0:
                    break
                if tag == DT_NEEDED:
                    self.needed.append(cstr(dstr, val))
                elif tag == DT_RUNPATH:
                    self.runpath = [p for p in cstr(dstr, val).split(":") if p]
                elif tag == DT_RPATH:
                    self.rpath = [p for p in cstr(dstr, val).split(":") if p]
                elif tag == DT_FLAGS and val & 0x8:
                    self.bind_now = True
                elif tag == DT_FLAGS_1 and val & 0x1:
                    self.bind_now = True

        # Version definitions (index -> name) and needs (index -> (file, name, weak)).
        self.verdef, self.verneed = {}, {}
        for _, vd in by_type.get(SHT_GNU_VERDEF, []):
            vstr = data(sections[vd["link"]])
            blob, off = data(vd), 0
            for _ in range(vd["info"] or 10 ** 6):
                if off + 20 > len(blob):
                    break
                vd_version, vd_flags, vd_ndx, vd_cnt, vd_hash, vd_aux, vd_next = struct.unpack_from("<HHHHIII", blob, off)
                if vd_cnt:
                    vda_name, = struct.unpack_from("<I", blob, off + vd_aux)
                    self.verdef[vd_ndx] = cstr(vstr, vda_name)
                if not vd_next:
                    break
                off += vd_next
        for _, vn in by_type.get(SHT_GNU_VERNEED, []):
            vstr = data(sections[vn["link"]])
            blob, off = data(vn), 0
            for _ in range(vn["info"] or 10 ** 6):
                if off + 16 > len(blob):
                    break
                vn_version, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack_from("<HHIII", blob, off)
                file = cstr(vstr, vn_file)
                aoff = off + vn_aux
                for _ in range(vn_cnt):
                    vna_hash, vna_flags, vna_other, vna_name, vna_next = struct.unpack_from("<IHHII", blob, aoff)
                    self.verneed[vna_other] = (file, cstr(vstr, vna_name), bool(vna_flags & VER_FLG_WEAK))
                    if not vna_next:
                        break
                    aoff += vna_next
                if not vn_next:
                    break
                off += vn_next

        # Dynamic symbols with their version index.
        self.symbols = []          # (name, bind, type, defined, version name or None, hidden)
        dynsym_index = None
        for idx, ds in by_type.get(SHT_DYNSYM, []):
            dynsym_index = idx
            dstr = data(sections[ds["link"]])
            blob = data(ds)
            count = len(blob) // 24
            versym = None
            for _, vs in by_type.get(SHT_GNU_VERSYM, []):
                versym = data(vs)
            for i in range(count):
                st_name, st_info, st_other, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", blob, i * 24)
                if i == 0 or st_name == 0:
                    self.symbols.append(None)
                    continue
                bind, typ = st_info >> 4, st_info & 0xF
                ver, hidden = None, False
                if versym is not None and 2 * i + 2 <= len(versym):
                    raw, = struct.unpack_from("<H", versym, 2 * i)
                    hidden = bool(raw & 0x8000)
                    ndx = raw & 0x7FFF
                    if ndx >= 2:
                        if st_shndx == 0:
                            ver = self.verneed.get(ndx, (None, None, False))[1]
                        else:
                            ver = self.verdef.get(ndx)
                self.symbols.append((cstr(dstr, st_name), bind, typ, st_shndx != 0, ver, hidden))
            break

        # How relocations use each dynamic symbol: lazily through the PLT or eagerly.
        self.eager, self.lazy = set(), set()
        for _, rs in by_type.get(SHT_RELA, []):
            if rs["link"] != dynsym_index:
                continue
            blob = data(rs)
            for off in range(0, len(blob) - 23, 24):
                r_offset, r_info, r_addend = struct.unpack_from("<QQq", blob, off)
                sym, typ = r_info >> 32, r_info & 0xFFFFFFFF
                if sym == 0 or sym >= len(self.symbols) or self.symbols[sym] is None:
                    continue
                name = self.symbols[sym][0]
                (self.lazy if typ == R_X86_64_JUMP_SLOT and not self.bind_now else self.eager).add(name)

    def undefined(self):
        return [s for s in self.symbols if s and not s[3] and s[1] in (1, 2, 10)]

    def definitions(self):
        """(name, version) pairs and names with a default (or no) version, of the symbols this object exports."""
        versioned, default = set(), set()
        for s in self.symbols:
            if not s or not s[3] or s[1] not in (1, 2, 10):
                continue
            name, ver, hidden = s[0], s[4], s[5]
            if ver:
                versioned.add((name, ver))
            if not hidden:
                default.add(name)
        return versioned, default

    def defined_versions(self):
        return set(self.verdef.values())


def expand(paths, origin):
    return [p.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for p in paths]


def ldconfig_dirs():
    dirs = []
    exe = shutil.which("ldconfig") or ("/sbin/ldconfig" if os.path.exists("/sbin/ldconfig") else None)
    if exe:
        try:
            out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=20).stdout
            for line in out.splitlines():
                if "=>" in line and "x86-64" in line:
                    d = os.path.dirname(line.split("=>", 1)[1].strip())
                    if d not in dirs:
                        dirs.append(d)
        except (OSError, subprocess.SubprocessError):
            pass
    return dirs + [d for d in SYSTEM_DIRS if d not in dirs]


def resolve_closure(target, first_dirs):
    """Breadth-first DT_NEEDED closure, like the loader: {soname: path}, [missing (needed, by)], load order."""
    env_dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    system = ldconfig_dirs()
    loaded, order, missing, objects = {}, [], [], {}
    queue = [(target, None)]
    objects[target] = Elf(target)
    while queue:
        path, _ = queue.pop(0)
        obj = objects[path]
        origin = os.path.dirname(os.path.abspath(path))
        own = expand(obj.runpath, origin) if obj.runpath else expand(obj.rpath, origin)
        for name in obj.needed:
            if name in loaded:
                continue
            found = None
            for d in first_dirs + env_dirs + own + system:
                candidate = os.path.join(d, name)
                if os.path.isfile(candidate):
                    found = candidate
                    break
            if found is None:
                missing.append((name, os.path.basename(path)))
                loaded[name] = None
                continue
            loaded[name] = found
            real = os.path.realpath(found)
            if real not in objects:
                try:
                    objects[real] = Elf(found)
                except ElfError as e:
                    missing.append((name + " (" + str(e) + ")", os.path.basename(path)))
                    continue
                order.append(real)
                queue.append((real, path))
    return loaded, missing, order, objects


def demangle(names):
    exe = shutil.which("c++filt")
    if not exe or not names:
        return {n: n for n in names}
    try:
        out = subprocess.run([exe], input="\n".join(names) + "\n", capture_output=True, text=True, timeout=120).stdout
        lines = out.splitlines()
        if len(lines) == len(names):
            return dict(zip(names, lines))
    except (OSError, subprocess.SubprocessError):
        pass
    return {n: n for n in names}


def try_dlopen(target, lib_dirs):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(lib_dirs + [d for d in env.get("LD_LIBRARY_PATH", "").split(":") if d])
    results = {}
    for mode in ("RTLD_NOW", "RTLD_LAZY"):
        code = ("import ctypes, os, sys\n"
                "try:\n"
                "    ctypes.CDLL(sys.argv[1], mode=os.%s | os.RTLD_LOCAL)\n"
                "    print('loaded')\n"
                "except OSError as e:\n"
                "    print('failed: %%s' %% e)\n" % mode)
        try:
            p = subprocess.run([sys.executable, "-c", code, target], env=env, capture_output=True, text=True, timeout=300)
            text = (p.stdout.strip() or "") + (("\n" + p.stderr.strip()) if p.stderr.strip() else "")
            if p.returncode != 0:
                text += " (child exit %d)" % p.returncode
            results[mode] = text.strip()
        except (OSError, subprocess.SubprocessError) as e:
            results[mode] = "could not run: %s" % e
    return results


def main(argv):
    ap = argparse.ArgumentParser(description="Undefined dynamic symbols of a shared library that its dependencies do not define.")
    ap.add_argument("target")
    ap.add_argument("--lib-dir", action="append", default=[], help="searched first for DT_NEEDED (like LD_LIBRARY_PATH); repeatable")
    ap.add_argument("--json", help="write the full report here")
    ap.add_argument("--dlopen", action="store_true", help="also dlopen TARGET (RTLD_NOW and RTLD_LAZY) in a child process")
    ap.add_argument("--max-list", type=int, default=200, help="missing symbols printed (all go to --json)")
    a = ap.parse_args(argv)
    if not os.path.isfile(a.target):
        print("error: %s does not exist" % a.target, file=sys.stderr)
        return 2
    lib_dirs = [os.path.abspath(d) for d in a.lib_dir]
    try:
        loaded, missing_libs, order, objects = resolve_closure(os.path.abspath(a.target), lib_dirs)
    except (OSError, ElfError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    target = objects[os.path.abspath(a.target)]

    versioned, default, versions = set(), set(), set()
    for path in order:
        v, d = objects[path].definitions()
        versioned |= v
        default |= d
        versions |= objects[path].defined_versions()

    undefined = target.undefined()
    missing = []
    for name, bind, typ, _, ver, _ in undefined:
        if ((name, ver) in versioned) if ver else (name in default):
            continue
        if name in target.eager:
            use = "eager"
        elif name in target.lazy:
            use = "lazy"
        else:
            use = "unreferenced"
        missing.append({"name": name, "bind": STB_NAMES.get(bind, str(bind)), "type": STT_NAMES.get(typ, str(typ)),
                        "version": ver, "use": use})
    names = demangle([m["name"] for m in missing])
    for m in missing:
        m["demangled"] = names.get(m["name"], m["name"])
    missing.sort(key=lambda m: (m["bind"] == "WEAK" or m["use"] == "unreferenced", m["version"] is not None,
                                m["use"] != "eager", m["demangled"]))
    for m in missing:
        # Unversioned C++/C symbols are what libtorch*/libc10* export; versioned ones (GLIBC_*, GLIBCXX_*, CXXABI_*,
        # GCC_*) come from the system libraries.
        m["from"] = "system" if m["version"] else "torch"
        m["fatal"] = m["bind"] != "WEAK" and m["use"] != "unreferenced"
    strong = [m for m in missing if m["fatal"]]
    torch_missing = [m for m in strong if m["from"] == "torch"]
    system_missing = [m for m in strong if m["from"] == "system"]

    version_needs = []
    for ndx, (file, ver, weak) in sorted(target.verneed.items()):
        if ver not in versions:
            version_needs.append({"file": file, "version": ver, "weak": weak})
    strong_versions = [v for v in version_needs if not v["weak"]]

    print("target: %s (%d undefined dynamic symbols, %d version needs, BIND_NOW %s)"
          % (a.target, len(undefined), len(target.verneed), "yes" if target.bind_now else "no"))
    print("search: %s then $LD_LIBRARY_PATH, DT_RUNPATH/DT_RPATH, system folders" % (lib_dirs or "(no --lib-dir)"))
    for name in target.needed:
        print("  NEEDED %-28s -> %s" % (name, loaded.get(name) or "NOT FOUND"))
    if missing_libs:
        print("NOT FOUND anywhere (DT_NEEDED of the closure): " + ", ".join("%s (needed by %s)" % m for m in missing_libs))
    print("libraries in the closure: %d" % len(order))
    print("missing symbols: %d in all; %d matter: %d expected from libtorch/libc10 (%d eager = the load fails, %d lazy = "
          "fails when a function using it runs), %d from system libraries; tolerated: %d weak, %d that no relocation uses"
          % (len(missing), len(strong), len(torch_missing), sum(1 for m in torch_missing if m["use"] == "eager"),
             sum(1 for m in torch_missing if m["use"] == "lazy"), len(system_missing),
             sum(1 for m in missing if m["bind"] == "WEAK"),
             sum(1 for m in missing if m["bind"] != "WEAK" and m["use"] == "unreferenced")))
    for m in missing[: a.max_list]:
        print("  %-9s %-6s %-6s %-12s %s%s" % ("MISSING" if m["fatal"] else "tolerated", m["bind"], m["type"], m["use"], m["demangled"],
                                                ("@" + m["version"]) if m["version"] else ""))
        if m["demangled"] != m["name"]:
            print("  %-9s %s" % ("", m["name"]))
    if len(missing) > a.max_list:
        print("  ... %d more (see --json)" % (len(missing) - a.max_list))
    print("unsatisfied version needs: %d%s" % (len(version_needs), "".join(
        "\n  VERSION %s from %s%s" % (v["version"], v["file"], " (weak: tolerated)" if v["weak"] else " (NOT weak: the load fails unless the native fix weakens it)") for v in version_needs)))

    report = {"target": os.path.abspath(a.target), "lib_dirs": lib_dirs, "bind_now": target.bind_now,
              "needed": {n: loaded.get(n) for n in target.needed}, "closure": order,
              "not_found_libraries": [{"name": n, "needed_by": b} for n, b in missing_libs],
              "undefined_symbols": len(undefined), "missing_symbols": missing, "missing_that_matter": len(strong),
              "missing_torch": len(torch_missing), "missing_torch_eager": sum(1 for m in torch_missing if m["use"] == "eager"),
              "missing_system": len(system_missing),
              "unsatisfied_version_needs": version_needs}
    if a.dlopen:
        report["dlopen"] = try_dlopen(os.path.abspath(a.target), lib_dirs)
        for mode, text in report["dlopen"].items():
            print("dlopen %-9s: %s" % (mode, text))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if not strong and not strong_versions and not missing_libs else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
