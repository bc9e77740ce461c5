using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.ML.DeepExtensions.Runtime;
using TorchSharp;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Diagnostics for the native deep-learning runtime (TorchSharp + libtorch): versions, which native
/// libraries were loaded, the libstdc++ compatibility fix, threads, CUDA and the default device.
/// </summary>
/// <example><code>Console.WriteLine(DeepRuntime.Describe());</code></example>
public static class DeepRuntime
{
    private static volatile bool s_nativeOk;

    /// <summary>
    /// Makes sure TorchSharp's native library can be used: applies the Linux libstdc++ compatibility fix (a no-op
    /// elsewhere) and initializes libtorch. Cheap after the first successful call.
    /// </summary>
    /// <exception cref="InvalidOperationException">The native library cannot be loaded; the message says why and what the fix did.</exception>
    public static void EnsureNativeLibrary()
    {
        if (s_nativeOk) return;
        NativeRuntimeFix.EnsureApplied();
        try
        {
            ProbeTorch();
            s_nativeOk = true;
        }
        catch (Exception ex)
        {
            Exception inner = Unwrap(ex);
            throw new InvalidOperationException(
                $"TorchSharp's native library (libLibTorchSharp/libtorch) could not be loaded." + Environment.NewLine +
                $"Loader error: {NativeRuntimeFix.FindLoadError() ?? "(none recorded)"}" + Environment.NewLine +
                $"Native compatibility fix: {NativeRuntimeFix.Status}" + Environment.NewLine +
                $"TorchSharp: {inner.Message}", inner);
        }
    }

    /// <summary>Collects a <see cref="RuntimeReport"/>. Initializes libtorch if needed; never throws.</summary>
    public static RuntimeReport GetReport()
    {
        NativeRuntimeFix.EnsureApplied();
        string? loadError = null;
        try { ProbeTorch(); }
        catch (Exception ex) { loadError = Unwrap(ex).Message; }
        bool loaded = loadError == null;

        string? nativePath = ElfVersionPatcher.FindMappedLibrary("libLibTorchSharp.so");
        string? libtorchPath = ElfVersionPatcher.FindMappedLibrary("libtorch_cuda.so") ?? ElfVersionPatcher.FindMappedLibrary("libtorch_cpu.so");
        string? libtorchVersion = null;
        int threads = 0, gpus = 0;
        bool cuda = false;
        if (loaded)
        {
            try { (libtorchVersion, threads, cuda, gpus) = QueryTorch(); }
            catch (Exception ex) { loadError = Unwrap(ex).Message; }
        }

        return new RuntimeReport
        {
            LibraryVersion = InformationalVersion(typeof(DeepRuntime).Assembly),
            TorchSharpVersion = InformationalVersion(typeof(torch).Assembly),
            LibTorchVersion = libtorchVersion,
            NativeLibraryLoaded = loaded,
            NativeLoadError = loadError,
            LoaderError = loaded ? null : NativeRuntimeFix.FindLoadError(),
            NativeLibraryPath = nativePath,
            LibTorchPath = libtorchPath,
            NativeFixStatus = NativeRuntimeFix.Status,
            PatchedNativeFiles = NativeRuntimeFix.PatchedFiles,
            HostLibStdCxxPath = NativeRuntimeFix.HostLibStdCxx ?? ElfVersionPatcher.FindMappedLibrary("libstdc++.so.6"),
            Platform = $"{RuntimeInformation.FrameworkDescription}, {RuntimeInformation.OSDescription} ({RuntimeInformation.ProcessArchitecture})",
            CpuThreads = threads,
            CudaAvailable = cuda,
            CudaUnavailableReason = cuda ? null : CudaUnavailableReason(loaded, nativePath, libtorchPath),
            GpuCount = gpus,
            CudaLibraries = FindCudaLibraries(nativePath, libtorchPath),
            DefaultDevice = loaded ? DeepDevice.Auto.Resolve().ToString() : "cpu",
        };
    }

    /// <summary>A multi-line, human-readable "doctor" report (see <see cref="GetReport"/>).</summary>
    public static string Describe()
    {
        RuntimeReport r = GetReport();
        var sb = new StringBuilder("Microsoft.ML.DeepExtensions runtime").AppendLine();
        void Line(string label, object? value) => sb.Append("  ").Append(label.PadRight(20)).Append(": ")
            .AppendLine(Convert.ToString(value, CultureInfo.InvariantCulture));
        Line("Library version", r.LibraryVersion);
        Line("TorchSharp version", r.TorchSharpVersion);
        Line("libtorch version", r.LibTorchVersion ?? "(unknown)");
        Line("Platform", r.Platform);
        Line("Native library", r.NativeLibraryLoaded ? "loaded" : "NOT LOADED: " + FirstLine(r.NativeLoadError));
        if (r.LoaderError != null)
            Line("  loader error", r.LoaderError);
        Line("  libLibTorchSharp", r.NativeLibraryPath ?? "(not mapped)");
        Line("  libtorch", r.LibTorchPath ?? "(not mapped)");
        Line("  host libstdc++", r.HostLibStdCxxPath ?? "(not found)");
        Line("Native fix", r.NativeFixStatus);
        foreach (string file in r.PatchedNativeFiles)
            Line("  patched", file);
        Line("CPU threads", r.CpuThreads);
        Line("CUDA available", r.CudaAvailable ? "yes" : "no (" + r.CudaUnavailableReason + ")");
        foreach (string library in r.CudaLibraries)
            Line("  CUDA library", library);
        Line("GPU count", r.GpuCount);
        Line("Default device", r.DefaultDevice);
        return sb.ToString().TrimEnd();
    }

    // The torch.* calls live in separate non-inlined methods so a failing native load (TypeInitializationException
    // from torch's static constructor) surfaces as a catchable exception in the callers above.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ProbeTorch() => torch.zeros(1).Dispose();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static (string Version, int Threads, bool Cuda, int Gpus) QueryTorch()
    {
        bool cuda = torch.cuda.is_available();
        return (torch.__version__, torch.get_num_threads(), cuda, cuda ? torch.cuda.device_count() : 0);
    }

    /// <summary>The CUDA pieces TorchSharp needs, each "name: path" or "name: not found" (libtorch's CUDA part beside the loaded libtorch, the CUDA runtime, cuDNN, the driver).</summary>
    private static IReadOnlyList<string> FindCudaLibraries(string? nativePath, string? libtorchPath)
    {
        var folders = new[] { libtorchPath, nativePath }.Where(p => p != null).Select(p => Path.GetDirectoryName(p)!).Distinct().ToList();
        string Find(string name, string pattern)
        {
            string? mapped = ElfVersionPatcher.FindMappedLibrary(name);
            string? beside = mapped ?? folders.Where(Directory.Exists).SelectMany(f => Directory.EnumerateFiles(f, pattern)).Order(StringComparer.Ordinal).FirstOrDefault();
            return $"{name}: {beside ?? "not found"}{(mapped != null ? " (loaded)" : "")}";
        }
        if (!OperatingSystem.IsLinux()) return [];
        string driver = NativeLibrary.TryLoad("libcuda.so.1", out IntPtr handle) ? "libcuda.so.1: found (NVIDIA driver)" : "libcuda.so.1: not found (no NVIDIA driver)";
        if (handle != IntPtr.Zero) NativeLibrary.Free(handle);
        return [Find("libtorch_cuda.so", "libtorch_cuda*.so*"), Find("libc10_cuda.so", "libc10_cuda*.so*"), Find("libcudart.so", "libcudart*.so*"), Find("libcudnn.so", "libcudnn*.so*"), driver];
    }

    private static string CudaUnavailableReason(bool loaded, string? nativePath, string? libtorchPath)
    {
        if (!loaded) return "the native library did not load";
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsWindows()) return "CUDA is not supported on this OS";
        bool cudaBuild = libtorchPath?.Contains("libtorch_cuda", StringComparison.Ordinal) == true
            || (nativePath != null && File.Exists(Path.Combine(Path.GetDirectoryName(nativePath)!, "libtorch_cuda.so")));
        if (!cudaBuild)
            return "this build references libtorch-cpu (CPU-only); build with -p:TorchBackend=cuda or reference TorchSharp-cuda-linux";
        string driver = OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1";
        if (!NativeLibrary.TryLoad(driver, out IntPtr handle))
            return $"no NVIDIA driver ({driver} not found)";
        NativeLibrary.Free(handle);
        return "the CUDA build and the NVIDIA driver are present but torch.cuda.is_available() is false " +
               "(no visible GPU, CUDA_VISIBLE_DEVICES, or a driver too old for this CUDA version; check nvidia-smi)";
    }

    private static string InformationalVersion(Assembly assembly) => Persistence.VersionStamp.Informational(assembly);

    private static string? FirstLine(string? text) => text?.Split('\n', 2)[0].TrimEnd();

    private static Exception Unwrap(Exception ex)
    {
        while (ex is TypeInitializationException or TargetInvocationException && ex.InnerException != null)
            ex = ex.InnerException;
        return ex;
    }
}

/// <summary>Snapshot of the native runtime returned by <see cref="DeepRuntime.GetReport"/>.</summary>
public sealed record RuntimeReport
{
    /// <summary>Informational version of Microsoft.ML.DeepExtensions.</summary>
    public string LibraryVersion { get; init; } = "";
    /// <summary>Informational version of the TorchSharp assembly.</summary>
    public string TorchSharpVersion { get; init; } = "";
    /// <summary>libtorch version reported by TorchSharp (<c>torch.__version__</c>); null if the native library did not load.</summary>
    public string? LibTorchVersion { get; init; }
    /// <summary>Whether libtorch initialized (a tensor could be created).</summary>
    public bool NativeLibraryLoaded { get; init; }
    /// <summary>Why the native library failed to load, when it did.</summary>
    public string? NativeLoadError { get; init; }
    /// <summary>When the native library did not load: the dynamic loader's own error for libLibTorchSharp.so (e.g. a missing GLIBCXX version).</summary>
    public string? LoaderError { get; init; }
    /// <summary>Path of the libLibTorchSharp.so mapped into this process (Linux only; null elsewhere or if not loaded).</summary>
    public string? NativeLibraryPath { get; init; }
    /// <summary>Path of the loaded libtorch_cuda.so or libtorch_cpu.so (Linux only).</summary>
    public string? LibTorchPath { get; init; }
    /// <summary>Outcome of the libstdc++ compatibility fix (not needed / patched N files / failed and why).</summary>
    public string NativeFixStatus { get; init; } = "";
    /// <summary>The libLibTorchSharp.so files the fix patched in this process.</summary>
    public IReadOnlyList<string> PatchedNativeFiles { get; init; } = Array.Empty<string>();
    /// <summary>The host libstdc++.so.6 (Linux only).</summary>
    public string? HostLibStdCxxPath { get; init; }
    /// <summary>.NET runtime, OS and process architecture.</summary>
    public string Platform { get; init; } = "";
    /// <summary>Intra-op CPU threads libtorch uses (<c>torch.get_num_threads()</c>).</summary>
    public int CpuThreads { get; init; }
    /// <summary>Whether CUDA can be used (<c>torch.cuda.is_available()</c>).</summary>
    public bool CudaAvailable { get; init; }
    /// <summary>Why CUDA is unavailable; null when it is available.</summary>
    public string? CudaUnavailableReason { get; init; }
    /// <summary>Number of visible CUDA devices.</summary>
    public int GpuCount { get; init; }
    /// <summary>The device trainers use by default: <c>cuda:0</c> when CUDA is available, else <c>cpu</c>.</summary>
    public string DefaultDevice { get; init; } = "cpu";
    /// <summary>
    /// Linux: the CUDA libraries found (or not) beside the loaded libtorch and the driver, one "name: path" or
    /// "name: not found" each — what to look at first when <see cref="CudaAvailable"/> is false on a GPU machine.
    /// </summary>
    public IReadOnlyList<string> CudaLibraries { get; init; } = [];
}
