using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Microsoft.ML.DeepExtensions.Runtime;

/// <summary>
/// Makes TorchSharp's libLibTorchSharp.so loadable on Linux hosts whose libstdc++ is older than the one it was
/// built against (e.g. Debian 12: GLIBCXX_3.4.32 not found). Before TorchSharp loads its natives, the copy it would
/// load is checked; when it needs versions the host lacks and no relocation uses them, a private copy is made under
/// the user's cache folder (<c>$XDG_CACHE_HOME</c> or <c>~/.cache</c>, then the temp folder), keyed by the original's
/// SHA-256, with those version needs marked weak (see <see cref="ElfVersionPatcher"/>) and links to the libraries beside
/// the original (its <c>$ORIGIN</c> run path finds libtorch there); a DllImport resolver on TorchSharp's assembly then
/// loads that copy. The shared file — in the NuGet cache, say — is never written. Runs once per process from a module
/// initializer; never throws. The build-time counterpart (build/Microsoft.ML.DeepExtensions.targets) patches the
/// application's own output copy. Set DEEPEXT_DISABLE_NATIVE_FIX=1 to turn it off.
/// </summary>
internal static class NativeRuntimeFix
{
    private const string NativeFileName = "libLibTorchSharp.so";
    private static readonly object Gate = new();
    private static volatile bool s_applied;
    private static string s_status = "not run yet";
    private static IReadOnlyList<string> s_patchedFiles = Array.Empty<string>();
    private static string? s_hostLibStdCxx;
    private static List<string> s_candidates = new();

    /// <summary>What the fix did: not needed / patched N file(s) / failed, and why.</summary>
    internal static string Status => s_status;

    /// <summary>The private, patched libLibTorchSharp.so copy this process loads (none when not needed).</summary>
    internal static IReadOnlyList<string> PatchedFiles => s_patchedFiles;

    /// <summary>The host libstdc++.so.6 the check was made against, when one was found.</summary>
    internal static string? HostLibStdCxx => s_hostLibStdCxx;

#pragma warning disable CA2255 // ModuleInitializer in a library: intended, it must run before any TorchSharp use.
    [ModuleInitializer]
    internal static void OnModuleLoad() => EnsureApplied();
#pragma warning restore CA2255

    /// <summary>Applies the fix once per process (thread-safe; later calls return immediately; never throws).</summary>
    public static void EnsureApplied()
    {
        if (s_applied) return;
        lock (Gate)
        {
            if (s_applied) return;
            var patched = new List<string>();
            try { s_status = Apply(patched); }
            catch (Exception ex) { s_status = $"failed: {ex.GetType().Name}: {ex.Message}"; }
            s_patchedFiles = patched.AsReadOnly();
            s_applied = true;
        }
    }

    private static string Apply(List<string> patched)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return "not needed (not Linux x64)";
        if (Environment.GetEnvironmentVariable("DEEPEXT_DISABLE_NATIVE_FIX") is "1" or "true")
            return "disabled (DEEPEXT_DISABLE_NATIVE_FIX is set)";

        List<string> files = s_candidates = CandidateFiles();
        if (files.Count == 0)
            return $"not needed (no {NativeFileName} found next to the application or TorchSharp)";

        HashSet<string>? host = ElfVersionPatcher.GetHostDefinedVersions(ElfVersionPatcher.LibStdCxx, out s_hostLibStdCxx);
        if (host == null)
            return $"skipped (host {ElfVersionPatcher.LibStdCxx} not found)";

        // The first candidate is the one the runtime's probing finds first (search directories, then the app).
        string file = files[0];
        List<string> missing = ElfVersionPatcher.FindUnsatisfiedVersions(file, ElfVersionPatcher.LibStdCxx, host);
        if (missing.Count == 0)
            return $"not needed ({s_hostLibStdCxx} defines every libstdc++ version {file} needs)";
        string copy = PrivateCopy(file, missing, out List<string> weakened);
        // TorchSharp loads "LibTorchSharp" by name (NativeLibrary.TryLoad with its assembly): the runtime's search finds the
        // original, which fails to load, and then asks the load context's ResolvingUnmanagedDll handlers — this one.
        // The DllImport resolver serves its P/Invokes without repeating the failing search.
        var torchSharp = typeof(TorchSharp.torch).Assembly;
        var handle = new Lazy<IntPtr>(() => NativeLibrary.Load(copy));
        static bool Ours(string name) => name is "LibTorchSharp" or "libLibTorchSharp" or NativeFileName;
        (System.Runtime.Loader.AssemblyLoadContext.GetLoadContext(torchSharp) ?? System.Runtime.Loader.AssemblyLoadContext.Default)
            .ResolvingUnmanagedDll += (assembly, name) => assembly == torchSharp && Ours(name) ? handle.Value : IntPtr.Zero;
        NativeLibrary.SetDllImportResolver(torchSharp, (name, _, _) => Ours(name) ? handle.Value : IntPtr.Zero);
        patched.Add(copy);
        return $"loading a private copy {copy} of {file} with {string.Join(", ", weakened)} marked weak " +
               $"(not defined by {s_hostLibStdCxx}; no relocation uses it); the original is unchanged";
    }

    /// <summary>
    /// The patched private copy of <paramref name="original"/>: reused when an earlier process made it, else written
    /// atomically (temp file, patch, rename) with links to the original's sibling libraries.
    /// </summary>
    private static string PrivateCopy(string original, List<string> missing, out List<string> weakened)
    {
        string hash;
        using (var stream = File.OpenRead(original)) hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(stream))[..16].ToLowerInvariant();
        weakened = missing;
        Exception? last = null;
        foreach (string root in CacheRoots())
        {
            try
            {
                string dir = Path.Combine(root, "Microsoft.ML.DeepExtensions", "native", hash);
                string copy = Path.Combine(dir, NativeFileName);
                Directory.CreateDirectory(dir);
                foreach (string folder in LibTorchFolders(original)) LinkSiblings(folder, dir);
                if (File.Exists(copy) && ElfVersionPatcher.FindUnsatisfiedVersions(copy, ElfVersionPatcher.LibStdCxx, HostVersions()).Count == 0)
                    return copy;
                string tmp = Path.Combine(dir, $"{NativeFileName}.{Environment.ProcessId}.tmp");
                File.Copy(original, tmp, overwrite: true);
                if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, File.GetUnixFileMode(tmp) | UnixFileMode.UserWrite);
                if (!ElfVersionPatcher.TryMarkWeak(tmp, ElfVersionPatcher.LibStdCxx, missing, out List<string> changed, out string? reason))
                {
                    File.Delete(tmp);
                    throw new InvalidOperationException($"{original} needs {string.Join(", ", missing)}, which cannot be marked weak: {reason}");
                }
                weakened = changed;
                File.Move(tmp, copy, overwrite: true);
                return copy;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                last = ex;
            }
        }
        throw new IOException($"No writable folder for a private copy of {original} ({last?.Message}); set XDG_CACHE_HOME to one.", last);
    }

    private static HashSet<string> HostVersions() => ElfVersionPatcher.GetHostDefinedVersions(ElfVersionPatcher.LibStdCxx, out _) ?? [];

    private static IEnumerable<string> CacheRoots()
    {
        if (Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg) yield return xdg;
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (home.Length > 0) yield return Path.Combine(home, ".cache");
        yield return Path.GetTempPath();
    }

    /// <summary>
    /// Where the copy's dependencies (libtorch.so, libtorch_cpu.so, libc10.so, ...) are: beside the original in an
    /// application's output; in the NuGet cache (notebooks, scripts) they are another package's, so also the folder of
    /// a libtorch already loaded and <c>&lt;packages&gt;/libtorch-*/&lt;version&gt;/runtimes/&lt;rid&gt;/native/</c> (newest first).
    /// </summary>
    private static IEnumerable<string> LibTorchFolders(string original)
    {
        string native = Path.GetDirectoryName(original)!;
        yield return native;
        foreach (string loaded in new[] { "libtorch_cuda.so", "libtorch_cpu.so" })
            if (ElfVersionPatcher.FindMappedLibrary(loaded) is { } path) yield return Path.GetDirectoryName(path)!;
        // <packages>/torchsharp/<version>/runtimes/<rid>/native/libLibTorchSharp.so
        var rid = Directory.GetParent(native);
        var packages = rid?.Parent?.Parent?.Parent?.Parent;
        if (rid is null || packages is null || !string.Equals(rid.Parent!.Parent!.Parent!.Name, "torchsharp", StringComparison.OrdinalIgnoreCase)) yield break;
        var candidates = packages.EnumerateDirectories("libtorch-*")
            .SelectMany(p => p.EnumerateDirectories())
            .Select(v => (Version: Version.TryParse(v.Name.Split('-')[0], out var parsed) ? parsed : new Version(0, 0), Folder: Path.Combine(v.FullName, "runtimes", rid.Name, "native")))
            .Where(c => File.Exists(Path.Combine(c.Folder, "libtorch.so")))
            .OrderByDescending(c => c.Version);
        foreach (var c in candidates) yield return c.Folder;
    }

    /// <summary>Symbolic links to the shared libraries of <paramref name="from"/>, so the copy's <c>$ORIGIN</c> run path finds libtorch.</summary>
    private static void LinkSiblings(string from, string to)
    {
        foreach (string lib in Directory.GetFiles(from, "*.so*"))
        {
            string name = Path.GetFileName(lib);
            if (name == NativeFileName) continue;
            string link = Path.Combine(to, name);
            if (File.Exists(link) || Directory.Exists(link)) continue;
            try { File.CreateSymbolicLink(link, lib); }
            catch (IOException) when (File.Exists(link)) { }   // another process made it
        }
    }

    /// <summary>
    /// For diagnostics after TorchSharp failed to load: the loader's own error (dlerror text) for the first
    /// libLibTorchSharp.so candidate that does not load, or null. TorchSharp's message hides it.
    /// </summary>
    internal static string? FindLoadError()
    {
        EnsureApplied();
        if (!OperatingSystem.IsLinux()) return null;
        foreach (string file in s_candidates.Count > 0 ? s_candidates : CandidateFiles())
        {
            try { NativeLibrary.Free(NativeLibrary.Load(file)); }
            catch (Exception ex) when (ex is DllNotFoundException || ex is BadImageFormatException)
            {
                // .NET prefixes dlerror() with generic advice ending in "...the LD_DEBUG environment variable:".
                string message = ex.Message;
                int advice = message.IndexOf("environment variable:", StringComparison.Ordinal);
                return (advice >= 0 ? message[(advice + "environment variable:".Length)..] : message).Trim().Replace('\n', ' ');
            }
        }
        return null;
    }

    /// <summary>Every libLibTorchSharp.so that TorchSharp's loader may pick up in this process.</summary>
    private static List<string> CandidateFiles()
    {
        var dirs = new List<string>();
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirs)
            dirs.AddRange(searchDirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        dirs.Add(AppContext.BaseDirectory);
        dirs.Add(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native"));
        try
        {
            // typeof(...).Assembly loads TorchSharp.dll but does not run torch's static constructor (which loads natives).
            string? torchSharpDir = Path.GetDirectoryName(typeof(TorchSharp.torch).Assembly.Location);
            if (!string.IsNullOrEmpty(torchSharpDir))
            {
                dirs.Add(torchSharpDir);
                // TorchSharp's fallback for .NET Interactive consolidates natives into <TorchSharp.dll dir>/cpu or cuda-*.
                dirs.Add(Path.Combine(torchSharpDir, "cpu"));
                if (Directory.Exists(torchSharpDir))
                    dirs.AddRange(Directory.GetDirectories(torchSharpDir, "cuda-*"));
                // NuGet cache layout: ~/.nuget/packages/torchsharp/<v>/lib/net8.0/TorchSharp.dll -> <v>/runtimes/linux-x64/native.
                dirs.Add(Path.Combine(torchSharpDir, "..", "..", "runtimes", "linux-x64", "native"));
            }
        }
        catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException || ex is BadImageFormatException)
        {
            // TorchSharp.dll itself is missing or unreadable: nothing TorchSharp could load either.
        }

        var files = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string dir in dirs)
        {
            try
            {
                string file = Path.GetFullPath(Path.Combine(dir, NativeFileName));
                if (seen.Add(file) && File.Exists(file)) files.Add(file);
            }
            catch (Exception ex) when (ex is ArgumentException || ex is IOException || ex is NotSupportedException) { }
        }
        return files;
    }
}
