using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// Training on data larger than the cache budget: Fashion-MNIST's training split is written to disk twice — an ML.NET
/// binary file (<c>SaveAsBinary</c>) and a CSV text file — at its full size and at a quarter of it, and the MLP trains on
/// each (<c>LoadFromBinary</c> / <c>LoadFromTextFile</c>), each run in a child process of its own: streamed (a small
/// <c>CacheBudgetMegabytes</c>) and, once, cached (the default budget). Reported: the process's peak resident memory
/// (VmHWM) above its baseline — a bound that holds whatever the file's size is the same for both sizes — test
/// accuracy, and the epoch-time ratio streamed/cached.
/// </summary>
internal sealed class StreamingBenchmark(StreamingBenchmark.Settings settings)
{
    public sealed class Settings
    {
        public int Limit { get; set; } = 60_000;
        public int BudgetMegabytes { get; set; } = 4;
        public int Epochs { get; set; } = 4;
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
        var train = FashionMnist.Load(ml, settings.DataDirectory, "train", settings.Limit);
        long rows = train.GetRowCount() ?? 0;
        long quarter = rows / 4;
        // The files: binary and text, all the rows and a quarter of them.
        string Write(long n, string format)
        {
            var path = Path.Combine(dir, $"train{n}.{format}");
            var data = n == rows ? train : ml.Data.TakeRows(train, n);
            using var f = System.IO.File.Create(path);
            if (format == "idv") ml.Data.SaveAsBinary(data, f, keepHidden: false);
            else ml.Data.SaveAsText(data, f, separatorChar: ',', headerRow: false, schema: false, forceDense: true);
            return path;
        }
        var files = new[] { (rows, "idv"), (quarter, "idv"), (rows, "csv"), (quarter, "csv") }.ToDictionary(k => k, k => Write(k.Item1, k.Item2));
        double tensorMb = rows * 785 * 4 / 1048576.0;
        double Mb(string path) => new FileInfo(path).Length / 1048576.0;
        Console.WriteLine($"{rows} rows: {tensorMb:F0} MB as tensors, {Mb(files[(rows, "idv")]):F0} MB .idv, {Mb(files[(rows, "csv")]):F0} MB .csv; budget {settings.BudgetMegabytes} MB");

        var runs = new[]
        {
            ("streamed", settings.BudgetMegabytes, rows, "idv"), ("streamed", settings.BudgetMegabytes, quarter, "idv"),
            ("streamed", settings.BudgetMegabytes, rows, "csv"), ("streamed", settings.BudgetMegabytes, quarter, "csv"),
            ("cached", 2048, rows, "idv"),
        };
        var results = runs.Select(r => (Run: r, Result: Child(r.Item1, r.Item2, files[(r.Item3, r.Item4)]))).ToList();
        var info = MachineInfo.Collect();
        var report = new StringBuilder()
            .AppendLine("# Training on data larger than the cache budget (MLP, Fashion-MNIST from a file)").AppendLine()
            .AppendLine($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {info.Cpu}, {info.Cores} cores; .NET {info.Runtime}; TorchSharp {info.TorchSharp}, libtorch {info.LibTorch}.")
            .AppendLine($"{rows:N0} training rows: {tensorMb:F0} MB as tensors ({tensorMb / settings.BudgetMegabytes:F0}× the streamed runs' {settings.BudgetMegabytes} MB budget); "
                + $"files: {Mb(files[(rows, "idv")]):F0} MB .idv (`LoadFromBinary`), {Mb(files[(rows, "csv")]):F0} MB .csv (`LoadFromTextFile`), and the first {quarter:N0} rows of each; "
                + $"MLP defaults, {settings.Epochs} epochs, seed 1, each run in its own process; test: t10k.").AppendLine()
            .AppendLine("| run | file | rows | CacheBudgetMegabytes | peak RSS above baseline (MB) | baseline RSS (MB) | test accuracy | median epoch s (after the first) | epoch seconds |")
            .AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var (run, r) in results)
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {run.Item1} | .{run.Item4} | {run.Item3:N0} | {run.Item2} | {r.PeakAboveMb:F0} | {r.BaselineMb:F0} | {r.Accuracy:F4} | {r.MedianEpoch:F2} | {string.Join(", ", r.Epochs.Select(e => e.ToString("F2", CultureInfo.InvariantCulture)))} |"));
        var (binary, binaryQuarter, text, textQuarter, cached) = (results[0].Result, results[1].Result, results[2].Result, results[3].Result, results[4].Result);
        report.AppendLine().AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Streamed, peak memory above baseline at {quarter:N0} → {rows:N0} rows: text file {textQuarter.PeakAboveMb:F0} → {text.PeakAboveMb:F0} MB, binary file {binaryQuarter.PeakAboveMb:F0} → {binary.PeakAboveMb:F0} MB; "
            + $"cached {cached.PeakAboveMb:F0} MB (the data is {tensorMb:F0} MB as tensors). Accuracy streamed {binary.Accuracy:F4} (.idv), {text.Accuracy:F4} (.csv) vs cached {cached.Accuracy:F4}; "
            + $"epoch time ratio streamed/cached {binary.MedianEpoch / cached.MedianEpoch:F2} (.idv), {text.MedianEpoch / cached.MedianEpoch:F2} (.csv)."));
        Console.WriteLine(report);
        if (settings.Output is { } output) System.IO.File.WriteAllText(output, report.ToString());
        Directory.Delete(dir, recursive: true);
        return 0;
    }

    private sealed record ChildResult(double BaselineMb, double PeakAboveMb, double Accuracy, double MedianEpoch, double[] Epochs);

    private ChildResult Child(string mode, int budget, string file)
    {
        // The same program again: through the dotnet host (dotnet Benchmarks.dll) or as its own executable (dotnet run's apphost).
        var args = new List<string>();
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") args.Add(typeof(Program).Assembly.Location);
        args.AddRange(["stream", "--child", mode, "--file", file, "--budget", budget.ToString(CultureInfo.InvariantCulture),
            "--epochs", settings.Epochs.ToString(CultureInfo.InvariantCulture)]);
        if (settings.Threads is int t) args.AddRange(["--threads", t.ToString(CultureInfo.InvariantCulture)]);
        if (settings.DataDirectory is { } d) args.AddRange(["--data", d]);
        var start = new ProcessStartInfo(Environment.ProcessPath!, args) { RedirectStandardOutput = true };
        using var p = Process.Start(start)!;
        string? result = null;
        while (p.StandardOutput.ReadLine() is { } line)
        {
            Console.WriteLine($"  [{mode}, {Path.GetFileName(file)}] {line}");
            if (line.StartsWith("RESULT\t", StringComparison.Ordinal)) result = line;
        }
        p.WaitForExit();
        if (p.ExitCode != 0 || result is null) throw new InvalidOperationException($"The {mode} run on {file} failed (exit code {p.ExitCode}).");
        var f = result.Split('\t');
        double D(int i) => double.Parse(f[i], CultureInfo.InvariantCulture);
        return new ChildResult(D(1), D(2), D(3), D(4), f[5].Split(',').Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToArray());
    }

    private int RunChild(string mode)
    {
        var ml = new MLContext(seed: 1);
        var file = settings.File ?? throw new ArgumentException("--child needs --file.");
        // The text file holds the label's key index and the 784 pixels, as the parent wrote them.
        var train = file.EndsWith(".csv", StringComparison.Ordinal)
            ? ml.Data.LoadFromTextFile(file, [new TextLoader.Column("Label", DataKind.UInt32, [new TextLoader.Range(0)], new KeyCount(10)),
                new TextLoader.Column("Features", DataKind.Single, [new TextLoader.Range(1, 784)])], separatorChar: ',')
            : ml.Data.LoadFromBinary(file);
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
