// Dependency-free ELF64 (little-endian) reader/patcher for symbol-version requirements.
//
// Why: TorchSharp's libLibTorchSharp.so is built with GCC 13+, whose <iostream> emits an undefined
// reference to std::ios_base_library_init@GLIBCXX_3.4.32. Nothing relocates against that symbol; it
// only exists to make the dynamic loader demand a libstdc++ with that version. Hosts with an older
// libstdc++ (Debian 12 defines up to GLIBCXX_3.4.30) then refuse to load the library. Setting
// VER_FLG_WEAK on that version-need entry makes glibc tolerate its absence. This is only done when it
// is provably harmless: no dynamic relocation binds a symbol through that version.
//
// This file is compiled twice:
//  * into Microsoft.ML.DeepExtensions (DEEPEXT_LIBRARY defined): used by NativeRuntimeFix at run time;
//  * as an MSBuild inline task (RoslynCodeTaskFactory, which targets .NET Standard 2.0): the
//    PatchTorchSharpNative task at the end patches build/publish outputs.
// Keep it to .NET Standard 2.0 APIs (no Span, IReadOnlySet, records, init accessors, ranges).
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace Microsoft.ML.DeepExtensions.Runtime
{
    /// <summary>Reads and patches the GNU symbol-versioning sections of ELF64 little-endian shared libraries.</summary>
    internal static class ElfVersionPatcher
    {
        /// <summary>Soname of the GNU C++ runtime.</summary>
        public const string LibStdCxx = "libstdc++.so.6";

        /// <summary>Vernaux flag VER_FLG_WEAK: a missing version is not an error (glibc only mentions it in verbose/trace mode).</summary>
        public const ushort VerFlgWeak = 0x2;

        private const ushort VerFlgBase = 0x1;
        private const uint ShtRela = 4, ShtNoBits = 8, ShtRel = 9, ShtDynSym = 11;
        private const uint ShtGnuVerdef = 0x6ffffffd, ShtGnuVerneed = 0x6ffffffe, ShtGnuVersym = 0x6fffffff;

        /// <summary>One Vernaux entry of <c>.gnu.version_r</c>: a version <see cref="Version"/> needed from <see cref="File"/>.</summary>
        public sealed class VersionNeed
        {
            /// <summary>The needed library (Verneed vn_file), e.g. libstdc++.so.6.</summary>
            public string File = "";
            /// <summary>The version name (vna_name), e.g. GLIBCXX_3.4.32.</summary>
            public string Version = "";
            /// <summary>vna_flags.</summary>
            public ushort Flags;
            /// <summary>vna_other: the index that <c>.gnu.version</c> entries use to refer to this version.</summary>
            public ushort Index;
            /// <summary>Absolute file offset of the 2-byte vna_flags field.</summary>
            public long FlagsOffset;
            /// <summary>True when VER_FLG_WEAK is set.</summary>
            public bool IsWeak { get { return (Flags & VerFlgWeak) != 0; } }
            /// <inheritdoc />
            public override string ToString() { return File + ":" + Version + (IsWeak ? " (weak)" : ""); }
        }

        /// <summary>Lists every version-need entry (<c>.gnu.version_r</c>) of an ELF shared library.</summary>
        public static List<VersionNeed> ReadVersionNeeds(string libraryPath)
        {
            using (var elf = new Elf(libraryPath)) return ReadVersionNeeds(elf);
        }

        /// <summary>Lists the version names a library defines (<c>.gnu.version_d</c>), without the base (soname) entry.</summary>
        public static HashSet<string> ReadVersionDefinitions(string libraryPath)
        {
            var result = new HashSet<string>(StringComparer.Ordinal);
            using (var elf = new Elf(libraryPath))
            {
                Section? verdef = elf.Find(ShtGnuVerdef);
                if (verdef == null) return result;
                byte[] d = elf.Read(verdef), strtab = elf.Read(elf.Sections[(int)verdef.Link]);
                long off = 0;
                for (uint i = 0; i < Math.Max(verdef.Info, 1u) * 2 && off + 20 <= d.Length; i++)
                {
                    ushort flags = U16(d, off + 2), cnt = U16(d, off + 6);
                    uint aux = U32(d, off + 12), next = U32(d, off + 16);
                    if (cnt > 0 && (flags & VerFlgBase) == 0 && off + aux + 8 <= d.Length)
                        result.Add(Str(strtab, U32(d, off + aux)));
                    if (next == 0) break;
                    off += next;
                }
            }
            return result;
        }

        /// <summary>
        /// Versions that <paramref name="libraryPath"/> needs (non-weak) from <paramref name="neededFile"/>
        /// but that the host library does not define.
        /// </summary>
        /// <param name="libraryPath">The library to inspect, e.g. libLibTorchSharp.so.</param>
        /// <param name="neededFile">The soname whose versions are checked, e.g. libstdc++.so.6.</param>
        /// <param name="hostDefinedVersions">Versions the host's copy of <paramref name="neededFile"/> defines (see <see cref="GetHostDefinedVersions"/>).</param>
        public static List<string> FindUnsatisfiedVersions(string libraryPath, string neededFile, ICollection<string> hostDefinedVersions)
        {
            return ReadVersionNeeds(libraryPath)
                .Where(n => n.File == neededFile && !n.IsWeak && !hostDefinedVersions.Contains(n.Version))
                .Select(n => n.Version).Distinct().ToList();
        }

        /// <summary>
        /// Sets VER_FLG_WEAK on the version-need entries <paramref name="versions"/> of <paramref name="neededFile"/>,
        /// in place (only the 2-byte vna_flags fields change; file mode and modification time are preserved).
        /// All-or-nothing: refuses (returns false, changes nothing) if any requested version is used by a dynamic
        /// relocation, i.e. some relocated symbol's <c>.gnu.version</c> index equals that entry's vna_other.
        /// Idempotent: entries that are already weak, or versions the library does not need, are skipped.
        /// </summary>
        /// <param name="libraryPath">Library to patch.</param>
        /// <param name="neededFile">Soname the versions belong to, e.g. libstdc++.so.6.</param>
        /// <param name="versions">Version names to make weak.</param>
        /// <param name="changed">Versions actually changed by this call (empty when nothing was needed).</param>
        /// <param name="reason">Why the call refused or failed; null on success.</param>
        public static bool TryMarkWeak(string libraryPath, string neededFile, IEnumerable<string> versions,
            out List<string> changed, out string? reason)
        {
            changed = new List<string>();
            reason = null;
            var targets = new List<VersionNeed>();
            try
            {
                using (var elf = new Elf(libraryPath))
                {
                    List<VersionNeed> needs = ReadVersionNeeds(elf);
                    foreach (string version in versions.Distinct())
                    {
                        foreach (VersionNeed need in needs.Where(n => n.File == neededFile && n.Version == version && !n.IsWeak))
                        {
                            string? symbol = FindRelocatedSymbol(elf, need.Index);
                            if (symbol != null)
                            {
                                reason = need.Version + " (from " + neededFile + ") cannot be made weak: a dynamic relocation binds '"
                                    + symbol + "' through it, so the library really uses it. A newer " + neededFile + " is required.";
                                return false;
                            }
                            targets.Add(need);
                        }
                    }
                }
                if (targets.Count == 0) return true;

                DateTime mtime = File.GetLastWriteTimeUtc(libraryPath);
                using (var fs = new FileStream(libraryPath, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete))
                {
                    foreach (VersionNeed need in targets)
                    {
                        ushort flags = (ushort)(need.Flags | VerFlgWeak);
                        fs.Position = need.FlagsOffset;
                        fs.Write(new[] { (byte)flags, (byte)(flags >> 8) }, 0, 2);
                    }
                }
                // Keep the timestamp so incremental copies (size + mtime) treat the patched file as up to date.
                File.SetLastWriteTimeUtc(libraryPath, mtime);
                changed.AddRange(targets.Select(t => t.Version).Distinct());
                return true;
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException || ex is InvalidDataException)
            {
                reason = "cannot patch: " + ex.Message;
                return false;
            }
        }

        /// <summary>
        /// Finds the host's copy of a library: the file mapped into this process (/proc/self/maps), else (library
        /// build only) after <c>NativeLibrary.TryLoad</c>, else the first match in the standard x86-64 library directories.
        /// </summary>
        /// <returns>The path, or null when not found.</returns>
        public static string? FindHostLibrary(string soname)
        {
            string? path = FindMappedLibrary(soname);
#if DEEPEXT_LIBRARY
            if (path == null && System.Runtime.InteropServices.NativeLibrary.TryLoad(soname, out _))
                path = FindMappedLibrary(soname);
#endif
            if (path != null) return path;
            foreach (string dir in new[] { "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib/x86_64-linux-gnu" })
            {
                string candidate = Path.Combine(dir, soname);
                if (File.Exists(candidate)) return candidate;
            }
            return null;
        }

        /// <summary>The version names the host's <paramref name="soname"/> defines, or null if it cannot be found or read.</summary>
        public static HashSet<string>? GetHostDefinedVersions(string soname, out string? hostPath)
        {
            hostPath = FindHostLibrary(soname);
            if (hostPath == null) return null;
            try { return ReadVersionDefinitions(hostPath); }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException || ex is InvalidDataException) { return null; }
        }

        /// <summary>
        /// Path of a file mapped into this process whose name is <paramref name="fileName"/> or starts with
        /// <paramref name="fileName"/> followed by '.' (so libstdc++.so.6 matches libstdc++.so.6.0.30); null if none.
        /// </summary>
        public static string? FindMappedLibrary(string fileName)
        {
            try
            {
                if (!File.Exists("/proc/self/maps")) return null;
                foreach (string line in File.ReadAllLines("/proc/self/maps"))
                {
                    int slash = line.IndexOf('/');
                    if (slash < 0) continue;
                    string path = line.Substring(slash).Trim();
                    string name = Path.GetFileName(path);
                    if (name == fileName || name.StartsWith(fileName + ".", StringComparison.Ordinal))
                        return path.EndsWith(" (deleted)", StringComparison.Ordinal) ? null : path;
                }
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException) { }
            return null;
        }

        // ---------------------------------------------------------------- internals

        private static List<VersionNeed> ReadVersionNeeds(Elf elf)
        {
            var result = new List<VersionNeed>();
            Section? verneed = elf.Find(ShtGnuVerneed);
            if (verneed == null) return result;
            byte[] d = elf.Read(verneed), strtab = elf.Read(elf.Sections[(int)verneed.Link]);
            long off = 0;
            // Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32.
            // Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32.
            for (uint i = 0; i < Math.Max(verneed.Info, 1u) * 2 && off + 16 <= d.Length; i++)
            {
                ushort cnt = U16(d, off + 2);
                string file = Str(strtab, U32(d, off + 4));
                long aux = off + U32(d, off + 8);
                for (int j = 0; j < cnt && aux + 16 <= d.Length; j++)
                {
                    result.Add(new VersionNeed
                    {
                        File = file,
                        Flags = U16(d, aux + 4),
                        Index = U16(d, aux + 6),
                        Version = Str(strtab, U32(d, aux + 8)),
                        FlagsOffset = verneed.Offset + aux + 4,
                    });
                    uint auxNext = U32(d, aux + 12);
                    if (auxNext == 0) break;
                    aux += auxNext;
                }
                uint next = U32(d, off + 12);
                if (next == 0) break;
                off += next;
            }
            return result;
        }

        /// <summary>Name of a dynamic symbol that a relocation references and whose version index is <paramref name="versionIndex"/>; null if none.</summary>
        private static string? FindRelocatedSymbol(Elf elf, ushort versionIndex)
        {
            Section? dynsym = elf.Find(ShtDynSym), versym = elf.Find(ShtGnuVersym);
            if (dynsym == null || versym == null) return null; // no dynamic symbols: no versioned bindings
            byte[] vs = elf.Read(versym);
            foreach (Section rel in elf.Sections.Where(s => (s.Type == ShtRela || s.Type == ShtRel) && (s.Link == dynsym.Index || s.Link == 0)))
            {
                byte[] r = elf.Read(rel);
                long entSize = rel.EntSize > 0 ? rel.EntSize : (rel.Type == ShtRela ? 24 : 16);
                for (long e = 0; e + 16 <= r.Length; e += entSize)
                {
                    ulong sym = U64(r, e + 8) >> 32; // ELF64_R_SYM(r_info)
                    if (sym == 0 || (long)sym * 2 + 2 > vs.Length) continue;
                    if ((U16(vs, (long)sym * 2) & 0x7fff) != versionIndex) continue;
                    byte[] symEntry = elf.Read(dynsym.Offset + (long)sym * 24, 24);
                    return Str(elf.Read(elf.Sections[(int)dynsym.Link]), U32(symEntry, 0));
                }
            }
            return null;
        }

        private sealed class Section
        {
            public int Index;
            public uint Type, Link, Info;
            public long Offset, Size, EntSize;
        }

        /// <summary>Minimal random-access ELF64 LE reader: only the header and the section header table are parsed up front.</summary>
        private sealed class Elf : IDisposable
        {
            private readonly FileStream _fs;
            public readonly Section[] Sections;

            public Elf(string path)
            {
                _fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                try
                {
                    byte[] h = Read(0, 64);
                    if (h[0] != 0x7f || h[1] != (byte)'E' || h[2] != (byte)'L' || h[3] != (byte)'F' || h[4] != 2 || h[5] != 1)
                        throw new InvalidDataException(path + " is not an ELF64 little-endian file");
                    long shoff = (long)U64(h, 40);
                    int shentsize = U16(h, 58);
                    long shnum = U16(h, 60);
                    if (shoff == 0 || shentsize < 64) throw new InvalidDataException(path + " has no section header table");
                    if (shnum == 0) shnum = (long)U64(Read(shoff, 64), 32); // extended numbering: count in section 0's sh_size
                    if (shnum > 65536) throw new InvalidDataException(path + ": implausible section count " + shnum);
                    byte[] t = Read(shoff, shnum * shentsize);
                    Sections = new Section[shnum];
                    for (int i = 0; i < shnum; i++)
                    {
                        long o = (long)i * shentsize;
                        Sections[i] = new Section
                        {
                            Index = i,
                            Type = U32(t, o + 4),
                            Offset = (long)U64(t, o + 24),
                            Size = (long)U64(t, o + 32),
                            Link = U32(t, o + 40),
                            Info = U32(t, o + 44),
                            EntSize = (long)U64(t, o + 56),
                        };
                    }
                }
                catch { _fs.Dispose(); throw; }
            }

            public Section? Find(uint type) { return Sections.FirstOrDefault(s => s.Type == type); }

            public byte[] Read(Section s)
            {
                if (s.Type == ShtNoBits) return Array.Empty<byte>();
                return Read(s.Offset, s.Size);
            }

            public byte[] Read(long offset, long length)
            {
                if (offset < 0 || length < 0 || offset + length > _fs.Length || length > int.MaxValue)
                    throw new InvalidDataException("ELF range " + offset + "+" + length + " lies outside " + _fs.Name);
                var buffer = new byte[length];
                _fs.Position = offset;
                int done = 0;
                while (done < length)
                {
                    int n = _fs.Read(buffer, done, (int)length - done);
                    if (n <= 0) throw new EndOfStreamException();
                    done += n;
                }
                return buffer;
            }

            public void Dispose() { _fs.Dispose(); }
        }

        private static ushort U16(byte[] b, long o) { return (ushort)(b[o] | b[o + 1] << 8); }
        private static uint U32(byte[] b, long o) { return (uint)(b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24); }
        private static ulong U64(byte[] b, long o) { return U32(b, o) | (ulong)U32(b, o + 4) << 32; }

        private static string Str(byte[] strtab, uint offset)
        {
            if (offset >= strtab.Length) return "";
            int end = Array.IndexOf(strtab, (byte)0, (int)offset);
            if (end < 0) end = strtab.Length;
            return Encoding.UTF8.GetString(strtab, (int)offset, end - (int)offset);
        }
    }

#if !DEEPEXT_LIBRARY
    /// <summary>
    /// MSBuild task (compiled inline by RoslynCodeTaskFactory from this file): marks weak, in each of
    /// <see cref="Files"/>, the libstdc++ version needs that the build host's libstdc++ does not define (plus
    /// <see cref="AlsoWeaken"/>), when no relocation uses them. Never fails the build; warns on refusal.
    /// </summary>
    public sealed class PatchTorchSharpNative : Microsoft.Build.Utilities.Task
    {
        /// <summary>The libLibTorchSharp.so files to check and patch.</summary>
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = new Microsoft.Build.Framework.ITaskItem[0];

        /// <summary>Extra version names (';'-separated) to weaken when safe even if the build host defines them, for older deployment hosts.</summary>
        public string AlsoWeaken { get; set; } = "";

        /// <summary>The files this invocation changed.</summary>
        [Microsoft.Build.Framework.Output]
        public Microsoft.Build.Framework.ITaskItem[] PatchedFiles { get; set; } = new Microsoft.Build.Framework.ITaskItem[0];

        /// <inheritdoc />
        public override bool Execute()
        {
            const Microsoft.Build.Framework.MessageImportance Low = Microsoft.Build.Framework.MessageImportance.Low;
            string? hostPath;
            HashSet<string>? host = ElfVersionPatcher.GetHostDefinedVersions(ElfVersionPatcher.LibStdCxx, out hostPath);
            if (host == null)
            {
                Log.LogMessage(Low, "PatchTorchSharpNative: host " + ElfVersionPatcher.LibStdCxx + " not found; nothing patched.");
                return true;
            }
            var extra = AlsoWeaken.Split(new[] { ';', ',' }, StringSplitOptions.RemoveEmptyEntries).Select(s => s.Trim()).ToList();
            var patched = new List<Microsoft.Build.Framework.ITaskItem>();
            foreach (var item in Files)
            {
                string file = item.GetMetadata("FullPath");
                try
                {
                    var changed = new List<string>();
                    List<string> done;
                    string? reason;
                    // Needs the build host cannot satisfy: the output would not load here, so warn on refusal.
                    var missing = ElfVersionPatcher.FindUnsatisfiedVersions(file, ElfVersionPatcher.LibStdCxx, host);
                    if (missing.Count > 0)
                    {
                        if (ElfVersionPatcher.TryMarkWeak(file, ElfVersionPatcher.LibStdCxx, missing, out done, out reason))
                            changed.AddRange(done);
                        else
                            Log.LogWarning(null, "DEEPEXT001", null, file, 0, 0, 0, 0,
                                "libLibTorchSharp.so cannot be fixed to load with " + hostPath + ": " + reason);
                    }
                    // Optional extras (for older deployment hosts): each one only if safe, quietly otherwise.
                    foreach (string version in extra)
                    {
                        if (ElfVersionPatcher.TryMarkWeak(file, ElfVersionPatcher.LibStdCxx, new[] { version }, out done, out reason))
                            changed.AddRange(done);
                        else
                            Log.LogMessage(Low, "PatchTorchSharpNative: " + file + ": " + reason);
                    }
                    if (changed.Count > 0)
                    {
                        Log.LogMessage(Low, "PatchTorchSharpNative: " + file + ": marked weak " + string.Join(", ", changed)
                            + " (build host: " + hostPath + ")");
                        patched.Add(new Microsoft.Build.Utilities.TaskItem(file));
                    }
                }
                catch (Exception ex)
                {
                    Log.LogMessage(Low, "PatchTorchSharpNative: skipped " + file + ": " + ex.Message);
                }
            }
            PatchedFiles = patched.ToArray();
            return true;
        }
    }
#endif
}
