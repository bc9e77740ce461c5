using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using TorchSharp;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>What a result was measured on.</summary>
internal sealed record MachineInfo(string Cpu, int Cores, string MemoryGiB, string Os, string Runtime, string TorchSharp, string LibTorch)
{
    public static MachineInfo Collect() => new(
        CpuModel(),
        Environment.ProcessorCount,
        (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024)).ToString("F0"),
        RuntimeInformation.OSDescription,
        Environment.Version.ToString(),
        Version(typeof(torch).Assembly),
        LibTorchVersion());

    private static string CpuModel()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal))
                        return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    private static string Version(Assembly assembly)
    {
        var v = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? assembly.GetName().Version?.ToString() ?? "?";
        int plus = v.IndexOf('+');
        return plus > 0 ? v[..plus] : v;
    }

    /// <summary>The libtorch native package the app was built with, read from its deps.json.</summary>
    private static string LibTorchVersion()
    {
        try
        {
            foreach (var deps in Directory.EnumerateFiles(AppContext.BaseDirectory, "*.deps.json"))
            {
                var m = Regex.Match(File.ReadAllText(deps), "\"(libtorch-[a-z0-9-]+|TorchSharp-cuda-[a-z]+)/([0-9][^\"]*)\"");
                if (m.Success) return $"{m.Groups[2].Value} ({m.Groups[1].Value})";
            }
        }
        catch (IOException) { }
        return "?";
    }

    /// <summary>The 1/5/15-minute load averages (Linux), to show how busy the machine was.</summary>
    public static string LoadAverage()
    {
        try
        {
            if (File.Exists("/proc/loadavg"))
                return string.Join(" / ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException) { }
        return "n/a";
    }

    /// <summary>The 1-minute load average, or null where it is not available.</summary>
    public static double? LoadAverage1()
    {
        try
        {
            if (File.Exists("/proc/loadavg")
                && double.TryParse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double l))
                return l;
        }
        catch (IOException) { }
        return null;
    }
}
