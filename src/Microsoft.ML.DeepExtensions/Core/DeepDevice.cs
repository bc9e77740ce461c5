using Microsoft.ML.DeepExtensions.Runtime;
using TorchSharp;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Where a network trains and scores: <see cref="Auto"/> (CUDA when available, else CPU), <see cref="Cpu"/>, or
/// <see cref="Cuda(int)"/>. When a trainer's <c>Device</c> option is left null, <see cref="MLContext.GpuDeviceId"/>
/// and <see cref="MLContext.FallbackToCpu"/> decide, as for ML.NET's own GPU-capable trainers.
/// </summary>
public readonly record struct DeepDevice
{
    private DeepDevice(string kind, int index) { Kind = kind; Index = index; }

    /// <summary>"auto", "cpu" or "cuda".</summary>
    public string Kind { get; }

    /// <summary>The CUDA device index (only for <see cref="Cuda(int)"/>).</summary>
    public int Index { get; }

    /// <summary>CUDA device 0 when CUDA is available, otherwise the CPU.</summary>
    public static DeepDevice Auto { get; } = new("auto", 0);

    /// <summary>The CPU.</summary>
    public static DeepDevice Cpu { get; } = new("cpu", 0);

    /// <summary>The CUDA device with the given index.</summary>
    public static DeepDevice Cuda(int index = 0) =>
        index >= 0 ? new("cuda", index) : throw new ArgumentOutOfRangeException(nameof(index), "A CUDA device index is 0 or more.");

    /// <summary>Parses "auto", "cpu", "cuda" or "cuda:N".</summary>
    public static DeepDevice Parse(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "auto") return Auto;
        if (t == "cpu") return Cpu;
        if (t == "cuda" || t == "gpu") return Cuda(0);
        if ((t.StartsWith("cuda:") || t.StartsWith("gpu:")) && int.TryParse(t[(t.IndexOf(':') + 1)..], out var i)) return Cuda(i);
        throw new FormatException($"Unknown device '{text}'. Use 'auto', 'cpu', 'cuda' or 'cuda:N'.");
    }

    /// <summary>The device an ML.NET context asks for: <see cref="MLContext.GpuDeviceId"/> when set, else <see cref="Auto"/>.</summary>
    public static DeepDevice FromContext(MLContext? context) =>
        context?.GpuDeviceId is int id ? Cuda(id) : Auto;

    /// <summary>
    /// Resolves to a concrete TorchSharp device. A CUDA request on a machine without CUDA throws, unless
    /// <paramref name="fallbackToCpu"/> is true (ML.NET's <see cref="MLContext.FallbackToCpu"/>).
    /// </summary>
    public torch.Device Resolve(bool fallbackToCpu = true)
    {
        DeepRuntime.EnsureNativeLibrary();
        switch (Kind)
        {
            case "cpu":
                return torch.CPU;
            case "cuda":
                if (torch.cuda.is_available() && Index < torch.cuda.device_count())
                    return new torch.Device(DeviceType.CUDA, Index);
                if (fallbackToCpu)
                    return torch.CPU;
                throw new InvalidOperationException(
                    $"CUDA device {Index} was requested but {(torch.cuda.is_available() ? $"only {torch.cuda.device_count()} CUDA device(s) exist" : "CUDA is not available")}. " +
                    "Set MLContext.FallbackToCpu = true, use DeepDevice.Auto, or see DeepRuntime.Describe().");
            default:
                return torch.cuda.is_available() ? torch.CUDA : torch.CPU;
        }
    }

    /// <inheritdoc />
    public override string ToString() => Kind == "cuda" ? $"cuda:{Index}" : Kind;
}
