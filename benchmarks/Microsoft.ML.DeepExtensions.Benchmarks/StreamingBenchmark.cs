using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.DeepExtensions.Datasets;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// Training on data larger than the cache budget: Fashion-MNIST's training split is written to an .idv file, and the
/// MLP trains on <c>LoadFromBinary</c> of it twice, each in a child process of its own — streamed (a small
/// <c>CacheBudgetMegabytes</c>) and cached (the default budget). Reported: the process's peak resident memory (VmHWM)
/// above its baseline against the data's tensor size and the budget, test accuracy of both, and the epoch-time ratio.
/// </summary>
internal sealed class StreamingBenchmark(StreamingBenchmark.Settings settings)
{
    public sealed class Settings
    {
        public int Limit { get; set; } = 60_000;
        public int BudgetMegabytes { get; set; } = 4;
        public int Epochs { get; set; } = 4;
        /// <summary>The managed heap cap of the second streamed run (DOTNET_GCHeapHardLimit).</summary>
        public int GcCapMegabytes { get; set; } = 400;
        public int? Threads { get; set; }
        public string? DataDirectory { get; set; }
        public string? Output { get; set; } = Path.Combine("benchmarks", "results", "streaming.md");
        public string? Child { get; set; }
        public string? File { get; set; }

        public static Settings Parse(string[] args)
        {
            var s = new Settings();
            Program.ParseOptions(args, "stream", (a, Next) =>
            {
                switch (a)
                {
                    case "--limit": s.Limit = Program.PositiveInt(a, Next()); break;
                    case "--budget": s.BudgetMegabytes = Program.PositiveInt(a, Next()); break;
                    case "--epochs": s.Epochs = Program.PositiveInt(a, Next()); break;
                    case "--gc-cap": s.GcCapMegabytes = Program.PositiveInt(a, Next()); break;
                    case "--threads": s.Threads = Program.PositiveInt(a, Next()); break;
                    case "--data": s.DataDirectory = Next() ?? throw new ArgumentException("Option --data needs a folder."); break;
                    case "--output":
                        var o = Next() ?? throw new ArgumentException("Option --output needs a file ('-' for none).");
                        s.Output = o == "-" ? null : o;
                        break;
                    case "--child": s.Child = Next(); break;
                    case "--file": s.File = Next(); break;
                    default: return false;
                }
                return true;
            });
            if (s.Epochs < 2) throw new ArgumentException("Option --epochs needs at least 2 (the first epoch is warm-up).");
            return s;
        }
    }

    public int Run() => settings.Child is { } mode ? RunChild(mode) : RunParent();

    private int RunParent()
    {
        var ml = new MLContext(seed: 1);
        var dir = Directory.CreateTempSubdirectory("deepext-streaming-").FullName;
        var file = Path.Combine(dir, "train.idv");
        var train = FashionMnist.Load(ml, settings.DataDirectory, "train", settings.Limit);
        using (var f = System.IO.File.Create(file)) ml.Data.SaveAsBinary(train, f, keepHidden: false);
        long rows = train.GetRowCount() ?? 0;
        double tensorMb = rows * 785 * 4 / 1048576.0, fileMb = new FileInfo(file).Length / 1048576.0;
        Console.WriteLine($"{rows} rows: {tensorMb:F0} MB as tensors, {fileMb:F0} MB .idv; budget {settings.BudgetMegabytes} MB");

        // The streamed run twice: with .NET's default GC, which leaves ML.NET's row-reading garbage (~1.4× the data per
        // epoch) until a full collection, and with the managed heap capped (DOTNET_GCHeapHardLimit), which shows how much
        // the run needs; the cached run holds the data as tensors.
        var results = new[] { ("streamed", settings.BudgetMegabytes, (int?)null), ("streamed", settings.BudgetMegabytes, (int?)settings.GcCapMegabytes), ("cached", 2048, (int?)null) }
            .Select(m => Child(m.Item1, m.Item2, file, m.Item3)).ToList();
        var (s, capped, c) = (results[0], results[1], results[2]);
        var info = MachineInfo.Collect();
        var report = new StringBuilder()
            .AppendLine("# Training on data larger than the cache budget (MLP, Fashion-MNIST from an .idv file)").AppendLine()
            .AppendLine($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {info.Cpu}, {info.Cores} cores; .NET {info.Runtime}; TorchSharp {info.TorchSharp}, libtorch {info.LibTorch}.")
            .AppendLine($"{rows:N0} training rows: {tensorMb:F0} MB as tensors ({tensorMb / settings.BudgetMegabytes:F0}× the streamed run's {settings.BudgetMegabytes} MB budget), a {fileMb:F0} MB .idv file; "
                + $"MLP defaults, {settings.Epochs} epochs, seed 1, each run in its own process; test: t10k.").AppendLine()
            .AppendLine("| run | CacheBudgetMegabytes | managed heap cap | peak RSS above baseline (MB) | baseline RSS (MB) | test accuracy | median epoch s (after the first) | epoch seconds |")
            .AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var r in results)
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Mode} | {r.Budget} | {(r.GcCap is int cap ? $"{cap} MB" : "none")} | {r.PeakAboveMb:F0} | {r.BaselineMb:F0} | {r.Accuracy:F4} | {r.MedianEpoch:F2} | {string.Join(", ", r.Epochs.Select(e => e.ToString("F2", CultureInfo.InvariantCulture)))} |"));
        report.AppendLine().AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Streamed vs cached: peak memory above baseline {s.PeakAboveMb:F0} MB ({capped.PeakAboveMb:F0} MB with the managed heap capped at {settings.GcCapMegabytes} MB) vs {c.PeakAboveMb:F0} MB (the data is {tensorMb:F0} MB as tensors); accuracy {s.Accuracy:F4} ({capped.Accuracy:F4} capped) vs {c.Accuracy:F4}; epoch time ratio streamed/cached {s.MedianEpoch / c.MedianEpoch:F2}."));
        Console.WriteLine(report);
        if (settings.Output is { } output) System.IO.File.WriteAllText(output, report.ToString());
        Directory.Delete(dir, recursive: true);
        return 0;
    }

    private sealed record ChildResult(string Mode, int Budget, int? GcCap, double BaselineMb, double PeakAboveMb, double Accuracy, double MedianEpoch, double[] Epochs);

    private ChildResult Child(string mode, int budget, string file, int? gcCapMegabytes)
    {
        // The same program again: through the dotnet host (dotnet Benchmarks.dll) or as its own executable (dotnet run's apphost).
        var args = new List<string>();
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") args.Add(typeof(Program).Assembly.Location);
        args.AddRange(["stream", "--child", mode, "--file", file, "--budget", budget.ToString(CultureInfo.InvariantCulture),
            "--epochs", settings.Epochs.ToString(CultureInfo.InvariantCulture)]);
        if (settings.Threads is int t) args.AddRange(["--threads", t.ToString(CultureInfo.InvariantCulture)]);
        if (settings.DataDirectory is { } d) args.AddRange(["--data", d]);
        var start = new ProcessStartInfo(Environment.ProcessPath!, args) { RedirectStandardOutput = true };
        if (gcCapMegabytes is int cap) start.Environment["DOTNET_GCHeapHardLimit"] = $"0x{cap * 1048576L:X}";
        using var p = Process.Start(start)!;
        string? result = null;
        while (p.StandardOutput.ReadLine() is { } line)
        {
            Console.WriteLine($"  [{mode}{(gcCapMegabytes is int c ? $", heap ≤ {c} MB" : "")}] {line}");
            if (line.StartsWith("RESULT\t", StringComparison.Ordinal)) result = line;
        }
        p.WaitForExit();
        if (p.ExitCode != 0 || result is null) throw new InvalidOperationException($"The {mode} run failed (exit code {p.ExitCode}).");
        var f = result.Split('\t');
        double D(int i) => double.Parse(f[i], CultureInfo.InvariantCulture);
        return new ChildResult(mode, budget, gcCapMegabytes, D(1), D(2), D(3), D(4), f[5].Split(',').Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToArray());
    }

    private int RunChild(string mode)
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromBinary(settings.File ?? throw new ArgumentException("--child needs --file."));
        using (var warm = TorchSharp.torch.ones(8)) _ = warm.sum().item<float>();   // libtorch loaded before the baseline
        double baseline = Status("VmRSS:");
        using var model = ml.Deep().Mlp(new MlpTrainer.Options
        {
            Epochs = settings.Epochs, Seed = 1, ValidationFraction = 0, CacheBudgetMegabytes = settings.BudgetMegabytes, NumberOfThreads = settings.Threads,
        }).Fit(train);
        double peak = Status("VmHWM:");
        Console.WriteLine($"managed: {GC.GetTotalAllocatedBytes() / 1048576.0:F0} MB allocated during the run, heap {GC.GetGCMemoryInfo().HeapSizeBytes / 1048576.0:F0} MB at the end; full collections {GC.CollectionCount(2)}");
        var test = FashionMnist.Load(ml, settings.DataDirectory, "t10k");
        double accuracy = ml.MulticlassClassification.Evaluate(model.Transform(test)).MicroAccuracy;
        var epochs = model.History.Epochs.Select(e => e.Seconds).ToArray();
        var rest = epochs.Skip(1).OrderBy(x => x).ToArray();
        double median = rest.Length % 2 == 1 ? rest[rest.Length / 2] : (rest[rest.Length / 2 - 1] + rest[rest.Length / 2]) / 2;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"RESULT\t{baseline:F1}\t{peak - baseline:F1}\t{accuracy:F4}\t{median:F3}\t{string.Join(",", epochs.Select(e => e.ToString("F3", CultureInfo.InvariantCulture)))}"));
        return 0;
    }

    // A /proc/self/status figure in MB (VmRSS: resident now; VmHWM: the peak so far).
    private static double Status(string key)
    {
        foreach (var line in System.IO.File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        return 0;
    }
}
