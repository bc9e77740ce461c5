using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using System.Runtime.InteropServices;
using Microsoft.ML.DeepExtensions.Runtime;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>
/// ElfVersionPatcher / NativeRuntimeFix / DeepRuntime. The patcher tests run on a temp copy of the pristine
/// libLibTorchSharp.so of TorchSharp 0.107 (GLIBCXX_3.4.32 is needed only via std::ios_base_library_init,
/// which nothing relocates against; GLIBCXX_3.4.30 and GLIBC_2.2.5 are relocated against).
/// </summary>
public sealed class NativeRuntimeFixTests : IDisposable
{
    private const string LibStdCxx = ElfVersionPatcher.LibStdCxx;
    private const string Unused = "GLIBCXX_3.4.32";
    private readonly string _dir = Directory.CreateTempSubdirectory("deepext-elf-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static bool IsLinuxX64 => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

    [Fact]
    public void HostLibStdCxx_IsFoundAndDefinesBaseVersions()
    {
        if (!IsLinuxX64) return;
        var defined = ElfVersionPatcher.GetHostDefinedVersions(LibStdCxx, out string path);
        Assert.NotNull(defined);
        Assert.True(File.Exists(path), path);
        Assert.Contains("GLIBCXX_3.4", defined);
        Assert.Contains("CXXABI_1.3", defined);
    }

    [Fact]
    public void FindUnsatisfiedVersions_ReportsWhatTheHostLacks()
    {
        string lib = PristineCopy();
        var needs = ElfVersionPatcher.ReadVersionNeeds(lib);
        Assert.Contains(needs, n => n.File == LibStdCxx && n.Version == Unused && !n.IsWeak);

        // A host defining everything but GLIBCXX_3.4.32 (e.g. Debian 12) is missing exactly that one.
        var allButUnused = needs.Where(n => n.File == LibStdCxx && n.Version != Unused).Select(n => n.Version).ToHashSet();
        Assert.Equal(new[] { Unused }, ElfVersionPatcher.FindUnsatisfiedVersions(lib, LibStdCxx, allButUnused));

        if (!IsLinuxX64) return;
        var host = ElfVersionPatcher.GetHostDefinedVersions(LibStdCxx, out _);
        var missing = ElfVersionPatcher.FindUnsatisfiedVersions(lib, LibStdCxx, host);
        Assert.Equal(!host.Contains(Unused), missing.Contains(Unused)); // true on Debian 12
    }

    [Fact]
    public void TryMarkWeak_ChangesOnlyTheFlagField_AndIsIdempotent()
    {
        string lib = PristineCopy();
        byte[] before = File.ReadAllBytes(lib);
        DateTime mtime = File.GetLastWriteTimeUtc(lib);
        var needsBefore = ElfVersionPatcher.ReadVersionNeeds(lib);
        var target = needsBefore.Single(n => n.File == LibStdCxx && n.Version == Unused);

        Assert.True(ElfVersionPatcher.TryMarkWeak(lib, LibStdCxx, new[] { Unused }, out var changed, out string reason), reason);
        Assert.Equal(new[] { Unused }, changed);

        // Re-read: only that entry gained VER_FLG_WEAK.
        var needsAfter = ElfVersionPatcher.ReadVersionNeeds(lib);
        Assert.Equal(needsBefore.Count, needsAfter.Count);
        for (int i = 0; i < needsBefore.Count; i++)
        {
            bool isTarget = needsBefore[i].FlagsOffset == target.FlagsOffset;
            Assert.Equal(needsBefore[i].Version, needsAfter[i].Version);
            Assert.Equal(isTarget ? (ushort)(needsBefore[i].Flags | ElfVersionPatcher.VerFlgWeak) : needsBefore[i].Flags, needsAfter[i].Flags);
        }
        Assert.Empty(ElfVersionPatcher.FindUnsatisfiedVersions(lib, LibStdCxx, new HashSet<string>(needsBefore.Where(n => n != target).Select(n => n.Version))));

        // Byte-identical except the 2-byte vna_flags field; timestamp preserved.
        byte[] after = File.ReadAllBytes(lib);
        Assert.Equal(before.Length, after.Length);
        var diffs = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToList();
        Assert.NotEmpty(diffs);
        Assert.All(diffs, i => Assert.InRange(i, target.FlagsOffset, target.FlagsOffset + 1));
        Assert.Equal(mtime, File.GetLastWriteTimeUtc(lib));

        // Second run: nothing to do, nothing written.
        Assert.True(ElfVersionPatcher.TryMarkWeak(lib, LibStdCxx, new[] { Unused }, out changed, out reason), reason);
        Assert.Empty(changed);
        Assert.Equal(after, File.ReadAllBytes(lib));
    }

    [Theory]
    [InlineData("libstdc++.so.6", "GLIBCXX_3.4.30")] // std::condition_variable::wait is bound through it
    [InlineData("libc.so.6", "GLIBC_2.2.5")]
    public void TryMarkWeak_RefusesVersionsUsedByRelocations(string file, string version)
    {
        string lib = PristineCopy();
        byte[] before = File.ReadAllBytes(lib);

        Assert.False(ElfVersionPatcher.TryMarkWeak(lib, file, new[] { version }, out var changed, out string reason));
        Assert.Empty(changed);
        Assert.Contains(version, reason);
        Assert.Contains("relocation", reason);
        Assert.Equal(before, File.ReadAllBytes(lib));

        // All-or-nothing: a safe version requested together with an unsafe one is not applied either.
        if (file == LibStdCxx)
        {
            Assert.False(ElfVersionPatcher.TryMarkWeak(lib, LibStdCxx, new[] { Unused, version }, out _, out _));
            Assert.Equal(before, File.ReadAllBytes(lib));
        }
    }

    [Fact]
    public void TryMarkWeak_AcceptsOnlyTheVersionNoRelocationUses()
    {
        // In TorchSharp 0.107's libLibTorchSharp.so every other version need is bound by some relocation.
        string lib = PristineCopy();
        var accepted = ElfVersionPatcher.ReadVersionNeeds(lib)
            .Where(n => ElfVersionPatcher.TryMarkWeak(lib, n.File, new[] { n.Version }, out _, out _))
            .Select(n => n.File + ":" + n.Version);
        Assert.Equal(new[] { LibStdCxx + ":" + Unused }, accepted);
    }

    [Fact]
    public void NonElfFiles_AreRejectedWithAReason()
    {
        string path = Path.Combine(_dir, "not-elf.so");
        File.WriteAllText(path, "definitely not an ELF file, but long enough to hold a 64-byte ELF header........");
        Assert.Throws<InvalidDataException>(() => ElfVersionPatcher.ReadVersionNeeds(path));
        Assert.False(ElfVersionPatcher.TryMarkWeak(path, LibStdCxx, new[] { Unused }, out _, out string reason));
        Assert.Contains("ELF", reason);
    }

    [Fact]
    public void PatchedCopy_PassesTheHostLoadersVersionCheck()
    {
        const string loader = "/lib64/ld-linux-x86-64.so.2";
        string libtorchDir = new[] { AppContext.BaseDirectory, Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native") }
            .FirstOrDefault(d => File.Exists(Path.Combine(d, "libtorch.so")));
        if (!IsLinuxX64 || !File.Exists(loader) || libtorchDir == null) return;
        var host = ElfVersionPatcher.GetHostDefinedVersions(LibStdCxx, out _);
        string lib = PristineCopy();

        // `ld.so --list` resolves dependencies and checks symbol versions without running any code.
        // A missing required version is fatal for dlopen; a missing *weak* version is only listed as "weak version ...".
        string original = RunLoaderList(loader, lib, libtorchDir);
        Assert.Equal(!host.Contains(Unused), original.Contains($": version `{Unused}' not found"));

        Assert.True(ElfVersionPatcher.TryMarkWeak(lib, LibStdCxx, new[] { Unused }, out _, out string reason), reason);
        string patched = RunLoaderList(loader, lib, libtorchDir);
        Assert.DoesNotContain(": version `", patched);
        Assert.DoesNotContain("=> not found", patched);
        Assert.Contains("libtorch_cpu.so", patched);
    }

    [Fact]
    public void NativeRuntimeFix_StatusIsSensible()
    {
        NativeRuntimeFix.EnsureApplied();
        NativeRuntimeFix.EnsureApplied(); // idempotent
        string status = NativeRuntimeFix.Status;
        Assert.False(string.IsNullOrWhiteSpace(status));
        Assert.DoesNotContain("failed", status);
        if (!IsLinuxX64)
        {
            Assert.StartsWith("not needed", status);
            return;
        }
        Assert.True(status.StartsWith("not needed") || status.StartsWith("loading a private copy") || status.StartsWith("disabled"), status);
        var host = ElfVersionPatcher.GetHostDefinedVersions(LibStdCxx, out _);
        foreach (string file in NativeRuntimeFix.PatchedFiles)
            Assert.Empty(ElfVersionPatcher.FindUnsatisfiedVersions(file, LibStdCxx, host));
    }

    [Fact]
    public void Doctor_ReportsAWorkingTorch()
    {
        RuntimeReport report = DeepRuntime.GetReport();
        Assert.True(report.NativeLibraryLoaded, report.NativeLoadError + " | " + report.LoaderError + " | " + report.NativeFixStatus);
        Assert.False(string.IsNullOrWhiteSpace(report.LibraryVersion));
        Assert.False(string.IsNullOrWhiteSpace(report.TorchSharpVersion));
        Assert.False(string.IsNullOrWhiteSpace(report.LibTorchVersion));
        Assert.True(report.CpuThreads > 0);
        Assert.Equal(report.CudaAvailable ? "cuda:0" : "cpu", report.DefaultDevice);
        Assert.Equal(report.CudaAvailable, report.CudaUnavailableReason == null);
        Assert.Equal(report.NativeFixStatus, NativeRuntimeFix.Status);
        if (OperatingSystem.IsLinux())
        {
            Assert.EndsWith("libLibTorchSharp.so", report.NativeLibraryPath);
            // This CPU build: libtorch's CUDA part is absent, and the report says so rather than staying silent.
            Assert.Equal(["libtorch_cuda.so", "libc10_cuda.so", "libcudart.so", "libcudnn.so", "libcuda.so.1"], report.CudaLibraries.Select(l => l.Split(':')[0]));
            if (!report.CudaAvailable) Assert.Contains("libtorch_cuda.so: not found", report.CudaLibraries);
        }

        string text = DeepRuntime.Describe();
        foreach (string library in report.CudaLibraries) Assert.Contains(library, text);
        Assert.Contains("TorchSharp version", text);
        Assert.Contains(report.TorchSharpVersion, text);
        Assert.Contains("Default device", text);

        DeepRuntime.EnsureNativeLibrary(); // does not throw once loaded
    }

    /// <summary>
    /// An application whose libLibTorchSharp.so is the pristine, unpatched file (as in the NuGet cache that .NET Interactive
    /// loads from): it trains, the shared file stays byte-identical, and the patched copy lives in the user's cache folder.
    /// </summary>
    [Fact, System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task ASharedUnpatchedNativeFileIsNeverWritten_APrivateCopyIsLoaded()
    {
        if (!IsLinuxX64) return;
        // The QuickStart example's build output (same configuration as this test) in a temp app folder: managed files
        // copied (the host resolves a linked app to its real folder), native libraries linked, and libLibTorchSharp.so a
        // pristine copy, read-only like a shared cache file.
        // <repo>/tests/<project>/bin/<configuration>/net10.0/ → <repo>/examples/QuickStart/bin/<configuration>/net10.0/
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string repo = output.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
        string quickStart = Path.Combine(repo, "examples", "QuickStart", "bin", output.Parent.Name, output.Name);
        Assert.True(File.Exists(Path.Combine(quickStart, "QuickStart.dll")), $"build examples/QuickStart first ({quickStart})");
        string app = Path.Combine(_dir, "app");
        foreach (string file in Directory.GetFiles(quickStart, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(app, Path.GetRelativePath(quickStart, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            if (Path.GetFileName(file) == "libLibTorchSharp.so") continue;
            if (file.Contains(".so", StringComparison.Ordinal)) File.CreateSymbolicLink(target, file);
            else File.Copy(file, target);
        }
        string shared = Path.Combine(app, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        File.Copy(PristineCopy(), shared);
        File.SetUnixFileMode(shared, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        byte[] before = File.ReadAllBytes(shared);
        bool needsFix = ElfVersionPatcher.FindUnsatisfiedVersions(shared, LibStdCxx, ElfVersionPatcher.GetHostDefinedVersions(LibStdCxx, out _)!).Count > 0;

        string cache = Path.Combine(_dir, "cache");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(app, "QuickStart.dll"));
        psi.ArgumentList.Add("--doctor");
        psi.Environment["XDG_CACHE_HOME"] = cache;
        psi.Environment.Remove("DEEPEXT_DISABLE_NATIVE_FIX");
        using Process process = Process.Start(psi)!;
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(120_000), "QuickStart --doctor timed out");
        string report = stdout + await stderr;
        Assert.True(process.ExitCode == 0, report);
        Assert.Contains("Native library      : loaded", report);
        Assert.Equal(before, File.ReadAllBytes(shared));
        if (!needsFix)
        {
            Assert.Contains("not needed", report);
            return;
        }
        // Debian 12 / Ubuntu 22.04: the private copy is what got loaded.
        Assert.Contains("loading a private copy", report);
        string copy = Directory.GetFiles(Path.Combine(cache, "Microsoft.ML.DeepExtensions", "native"), "libLibTorchSharp.so", SearchOption.AllDirectories).Single();
        Assert.Contains(copy, report);
        Assert.Empty(ElfVersionPatcher.FindUnsatisfiedVersions(copy, LibStdCxx, ElfVersionPatcher.GetHostDefinedVersions(LibStdCxx, out _)!));
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>
    /// A temp copy of TorchSharp's unpatched libLibTorchSharp.so: from the TorchSharp .nupkg in the NuGet global
    /// packages folder, else the copy in the test output with any weak libstdc++ version flags cleared again.
    /// </summary>
    private string PristineCopy()
    {
        string dest = Path.Combine(_dir, $"libLibTorchSharp-{Guid.NewGuid():N}.so");
        string version = typeof(TorchSharp.torch).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0];
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string nupkg = Path.Combine(packages, "torchsharp", version ?? "", $"torchsharp.{version}.nupkg");
        if (version != null && File.Exists(nupkg))
        {
            using ZipArchive zip = ZipFile.OpenRead(nupkg);
            ZipArchiveEntry entry = zip.GetEntry("runtimes/linux-x64/native/libLibTorchSharp.so");
            if (entry != null)
            {
                entry.ExtractToFile(dest);
                return dest;
            }
        }

        string shipped = new[] { AppContext.BaseDirectory, Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native") }
            .Select(d => Path.Combine(d, "libLibTorchSharp.so")).FirstOrDefault(File.Exists);
        Assert.True(shipped != null, $"no pristine libLibTorchSharp.so: neither {nupkg} nor a copy in {AppContext.BaseDirectory}");
        File.Copy(shipped, dest);
        var weak = ElfVersionPatcher.ReadVersionNeeds(dest).Where(n => n.File == LibStdCxx && n.IsWeak).ToList();
        using var fs = new FileStream(dest, FileMode.Open, FileAccess.ReadWrite);
        foreach (var need in weak)
        {
            ushort flags = (ushort)(need.Flags & ~ElfVersionPatcher.VerFlgWeak);
            fs.Position = need.FlagsOffset;
            fs.Write(new[] { (byte)flags, (byte)(flags >> 8) });
        }
        return dest;
    }

    private static string RunLoaderList(string loader, string library, string libraryPath)
    {
        var psi = new ProcessStartInfo(loader) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("--list");
        psi.ArgumentList.Add(library);
        psi.Environment["LD_LIBRARY_PATH"] = libraryPath;
        using Process process = Process.Start(psi);
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(60_000), "ld.so --list timed out");
        return stdout + stderr.Result;
    }
}
