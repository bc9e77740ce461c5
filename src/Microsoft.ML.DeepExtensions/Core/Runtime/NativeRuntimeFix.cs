using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Microsoft.ML.DeepExtensions.Runtime;

/// <summary>
/// Makes TorchSharp's libLibTorchSharp.so loadable on Linux hosts whose libstdc++ is older than the one it was
/// built against (e.g. Debian 12: GLIBCXX_3.4.32 not found). Before TorchSharp loads its natives, every copy it
/// may load is checked and, when the only missing versions are unused by any relocation, those version needs
/// are marked weak in place (see <see cref="ElfVersionPatcher"/>). Runs once per process from a module
/// initializer; never throws. The build-time counterpart is build/Microsoft.ML.DeepExtensions.targets.
/// Set DEEPEXT_DISABLE_NATIVE_FIX=1 to turn it off.
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

    /// <summary>The libLibTorchSharp.so copies this process patched.</summary>
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

        var weakened = new SortedSet<string>(StringComparer.Ordinal);
        var failures = new List<string>();
        foreach (string file in files)
        {
            try
            {
                List<string> missing = ElfVersionPatcher.FindUnsatisfiedVersions(file, ElfVersionPatcher.LibStdCxx, host);
                if (missing.Count == 0) continue;
                if (ElfVersionPatcher.TryMarkWeak(file, ElfVersionPatcher.LibStdCxx, missing, out List<string> changed, out string? reason))
                {
                    patched.Add(file);
                    weakened.UnionWith(changed);
                }
                else
                {
                    failures.Add($"{file} (needs {string.Join(", ", missing)}): {reason}");
                }
            }
            catch (Exception ex)
            {
                failures.Add($"{file}: {ex.Message}");
            }
        }

        if (patched.Count == 0 && failures.Count == 0)
            return $"not needed ({s_hostLibStdCxx} defines every libstdc++ version needed by {files.Count} {NativeFileName} file(s))";
        string result = patched.Count == 0 ? "" :
            $"patched {patched.Count} file(s): marked {string.Join(", ", weakened)} weak (not defined by {s_hostLibStdCxx}; no relocation uses it)";
        if (failures.Count > 0)
            result += (result.Length > 0 ? "; " : "") + "failed for " + string.Join("; ", failures) +
                " (make the file writable, build/publish on Linux so the package's MSBuild targets patch the output," +
                " or install a newer libstdc++)";
        return result;
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
