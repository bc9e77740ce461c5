using System.Globalization;
using System.Text;
using Microsoft.ML.DeepExtensions.Datasets;
using TorchSharp;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// Seconds per epoch of <see cref="MlpTrainer"/> inside an ML.NET pipeline versus a raw TorchSharp loop on the same
/// model (784-256-128-10, ReLU, no dropout, no batch norm), optimiser (Adam, lr 1e-3), batch size, data (Fashion-MNIST
/// train) and seed. Runs alternate (raw, pipeline, then pipeline, raw, ...) because the machine is noisy; the first
/// epoch of every run is warm-up and dropped; the medians of the remaining epochs are compared.
/// </summary>
internal sealed class MlpBenchmark(MlpBenchmark.Settings settings)
{
    /// <summary>Adam's learning rate on both sides.</summary>
    public const double LearningRate = 1e-3;

    /// <summary>The ratio pipeline/raw (per-epoch medians) the library aims to stay under.</summary>
    public const double Target = 1.10;

    /// <summary>Command-line settings.</summary>
    public sealed class Settings
    {
        /// <summary>"mlp" (784-256-128-10) or "cnn" (CnnTrainer's default network, built from the library's own spec on both sides).</summary>
        public string Model { get; set; } = "mlp";
        public int Epochs { get; set; } = 3;
        public int Rounds { get; set; } = 4;
        public bool WarmUp { get; set; } = true;
        public int? Limit { get; set; }
        public int? TestLimit { get; set; }
        public int BatchSize { get; set; } = 128;
        public int Seed { get; set; } = 42;
        public int? Threads { get; set; }
        public bool Standardize { get; set; } = true;
        public string? DataDirectory { get; set; }
        /// <summary>The options as given, for the report.</summary>
        public string CommandLine { get; set; } = "";
        /// <summary>Markdown output; null: the default under benchmarks/results; "-": none.</summary>
        public string? Output { get; set; }

        public static Settings Parse(string[] args)
        {
            var s = new Settings { CommandLine = string.Join(" ", args) };
            Program.ParseOptions(args, "mlp", (a, Next) =>
            {
                switch (a)
                {
                    case "--epochs": s.Epochs = Program.PositiveInt(a, Next()); break;
                    case "--rounds": s.Rounds = Program.PositiveInt(a, Next()); break;
                    case "--limit": s.Limit = Program.PositiveInt(a, Next()); break;
                    case "--test-limit": s.TestLimit = Program.PositiveInt(a, Next()); break;
                    case "--batch": s.BatchSize = Program.PositiveInt(a, Next()); break;
                    case "--seed": s.Seed = Program.PositiveInt(a, Next()); break;
                    case "--threads": s.Threads = Program.PositiveInt(a, Next()); break;
                    case "--no-standardize": s.Standardize = false; break;
                    case "--no-warmup": s.WarmUp = false; break;
                    case "--data": s.DataDirectory = Next() ?? throw new ArgumentException("Option --data needs a folder."); break;
                    case "--output": s.Output = Next() ?? throw new ArgumentException("Option --output needs a file name (or '-')."); break;
                    default: return false;
                }
                return true;
            });
            if (s.Epochs < 2) Console.WriteLine("Note: with one epoch per run there is no warm epoch to time; the warm-up epoch is used.");
            return s;
        }
    }

    private sealed record RunResult(int Round, string Side, double[] EpochSeconds, double[] EpochCpuSeconds, double LoadSeconds, double TotalSeconds, double FinalLoss, double Accuracy)
    {
        /// <summary>Everything but the epochs: reading the data, (pipeline) the first pass that validates and caches it, building the model.</summary>
        public double OutsideEpochsSeconds => TotalSeconds - EpochSeconds.Sum();
    }

    public int Run()
    {
        var s = settings;
        s.DataDirectory ??= FashionMnist.FindDirectory("train") ?? throw new ArgumentException(
            $"Fashion-MNIST 'train' was not found: install the Debian package dataset-fashion-mnist ({FashionMnist.DebianDirectory}), set FASHION_MNIST_DIR or pass --data.");
        DeepRuntime.EnsureNativeLibrary(); // the raw loop touches torch before the library does
        if (s.Threads is int t) torch.set_num_threads(t);

        var machine = MachineInfo.Collect();
        string loadBefore = MachineInfo.LoadAverage();
        Console.WriteLine($"{Title(s)} on Fashion-MNIST: the trainer in an ML.NET pipeline vs raw TorchSharp");
        Console.WriteLine($"{machine.Cpu}, {machine.Cores} cores, torch threads {torch.get_num_threads()} (OMP_WAIT_POLICY {Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "unset"}), TorchSharp {machine.TorchSharp}, libtorch {machine.LibTorch}, .NET {machine.Runtime}");
        Console.WriteLine($"epochs {s.Epochs} x rounds {s.Rounds}, batch {s.BatchSize}, Adam lr {LearningRate}, seed {s.Seed}, rows {(s.Limit is int l ? l.ToString(CultureInfo.InvariantCulture) : "all")}, standardize {s.Standardize}, data {s.DataDirectory}");
        if (MachineInfo.LoadAverage1() is double busy && busy > machine.Cores)
            Console.WriteLine($"Warning: load average {busy:F1} exceeds {machine.Cores} cores; other processes compete for the CPU and wall-clock timings will be noisy "
                + "(torch's multi-threaded kernels suffer most). The CPU-time ratio and --threads 1 are more robust; or rerun on an idle machine.");
        Console.WriteLine();

        if (s.WarmUp)
        {
            // JIT, libtorch's thread pool and allocator warm up on a small slice, so round 1 does not pay for them.
            Console.Write("warm-up (both sides, 4,096 rows, 1 epoch, not timed) ... ");
            var w = new Settings { Epochs = 1, Limit = 4096, TestLimit = 1024, BatchSize = s.BatchSize, Seed = s.Seed, Standardize = s.Standardize, DataDirectory = s.DataDirectory };
            RawTorchMlp.Run(w);
            PipelineMlp.Run(w);
            Console.WriteLine("done");
        }

        var runs = new List<RunResult>();
        for (int round = 1; round <= s.Rounds; round++)
        {
            // Alternate who goes first so neither side always runs on a freshly warmed (or freshly disturbed) machine.
            foreach (string side in round % 2 == 1 ? new[] { "raw", "pipeline" } : new[] { "pipeline", "raw" })
            {
                Collect();
                Console.Write($"round {round}/{s.Rounds} {side,-8} ... ");
                RunResult run;
                if (side == "raw")
                {
                    var r = RawTorchMlp.Run(s);
                    run = new RunResult(round, side, r.EpochSeconds, r.EpochCpuSeconds, r.LoadSeconds, r.TotalSeconds, r.FinalLoss, r.TestAccuracy);
                }
                else
                {
                    var r = PipelineMlp.Run(s);
                    run = new RunResult(round, side, r.EpochSeconds, r.EpochCpuSeconds, r.LoadSeconds, r.TotalSeconds, r.FinalLoss, r.TestAccuracy);
                }
                runs.Add(run);
                Console.WriteLine($"epochs [{string.Join(", ", run.EpochSeconds.Select(F2))}] s (cpu [{string.Join(", ", run.EpochCpuSeconds.Select(F2))}] s), total {F2(run.TotalSeconds)} s, loss {run.FinalLoss:F4}, test accuracy {run.Accuracy:P2}");
            }
        }

        var summary = Summarize(runs) with { LoadAverage = $"{loadBefore} before, {MachineInfo.LoadAverage()} after" };
        Console.WriteLine();
        Console.WriteLine(summary.Text);
        if (s.Output != "-")
        {
            string path = s.Output ?? DefaultOutput(s.Model);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            File.WriteAllText(path, Markdown(machine, runs, summary));
            Console.WriteLine($"Wrote {Path.GetFullPath(path)}");
        }
        return 0;
    }

    private sealed record Summary(double RawEpoch, double PipeEpoch, double RawCpu, double PipeCpu, double RawTotal, double PipeTotal, double RawOutside, double PipeOutside,
        double RawAccuracy, double PipeAccuracy, int RawSamples, int PipeSamples, string Text)
    {
        public double EpochRatio => PipeEpoch / RawEpoch;
        public double TotalRatio => PipeTotal / RawTotal;
        public double CpuRatio => PipeCpu / RawCpu;
        public string LoadAverage { get; init; } = "";
        public double RawMin { get; init; }
        public double PipeMin { get; init; }
    }

    private Summary Summarize(List<RunResult> runs)
    {
        // Warm epochs: every epoch but the first of each run (unless runs have a single epoch).
        double[] Warm(string side, Func<RunResult, double[]> f) => runs.Where(r => r.Side == side)
            .SelectMany(r => f(r).Length > 1 ? f(r).Skip(1) : f(r)).Where(double.IsFinite).ToArray();
        double Med(string side, Func<RunResult, double> f) => Median(runs.Where(r => r.Side == side).Select(f).ToArray());
        var raw = Warm("raw", r => r.EpochSeconds);
        var pipe = Warm("pipeline", r => r.EpochSeconds);
        var sm = new Summary(Median(raw), Median(pipe), Median(Warm("raw", r => r.EpochCpuSeconds)), Median(Warm("pipeline", r => r.EpochCpuSeconds)), Med("raw", r => r.TotalSeconds), Med("pipeline", r => r.TotalSeconds),
            Med("raw", r => r.OutsideEpochsSeconds), Med("pipeline", r => r.OutsideEpochsSeconds), Med("raw", r => r.Accuracy), Med("pipeline", r => r.Accuracy),
            raw.Length, pipe.Length, "") { RawMin = raw.Min(), PipeMin = pipe.Min() };

        var sb = new StringBuilder();
        sb.AppendLine($"{"",-34}{"raw",10}{"pipeline",10}{"ratio",8}");
        sb.AppendLine($"{"median s/epoch (warm epochs)",-34}{F3(sm.RawEpoch),10}{F3(sm.PipeEpoch),10}{F3(sm.EpochRatio),8}   ({sm.RawSamples} / {sm.PipeSamples} epochs)");
        sb.AppendLine($"{"min s/epoch (warm epochs)",-34}{F3(raw.Min()),10}{F3(pipe.Min()),10}{F3(pipe.Min() / raw.Min()),8}");
        sb.AppendLine($"{"median CPU s/epoch (warm epochs)",-34}{F3(sm.RawCpu),10}{F3(sm.PipeCpu),10}{F3(sm.CpuRatio),8}");
        sb.AppendLine($"{"median total s (load + training)",-34}{F2(sm.RawTotal),10}{F2(sm.PipeTotal),10}{F3(sm.TotalRatio),8}");
        sb.AppendLine($"{"  of which outside the epochs",-34}{F2(sm.RawOutside),10}{F2(sm.PipeOutside),10}   (data loading, first pass, setup)");
        sb.AppendLine($"{"test accuracy (t10k)",-34}{sm.RawAccuracy,10:P2}{sm.PipeAccuracy,10:P2}");
        sb.AppendLine();
        sb.AppendLine($"pipeline/raw per epoch: {F3(sm.EpochRatio)} (target <= {Target:F2}): {(sm.EpochRatio <= Target ? "MET" : "MISSED")}");
        sb.Append($"pipeline/raw whole run: {F3(sm.TotalRatio)}");
        return sm with { Text = sb.ToString() };
    }

    private string Markdown(MachineInfo m, List<RunResult> runs, Summary sm)
    {
        var s = settings;
        var sb = new StringBuilder();
        sb.AppendLine($"# {Title(s)} on Fashion-MNIST: the trainer in an ML.NET pipeline vs raw TorchSharp");
        sb.AppendLine();
        sb.AppendLine($"Generated by `dotnet run -c Release --project benchmarks/Microsoft.ML.DeepExtensions.Benchmarks -- mlp{(s.CommandLine.Length > 0 ? " " + s.CommandLine : "")}`.");
        sb.AppendLine();
        sb.AppendLine("| | |");
        sb.AppendLine("|---|---|");
        sb.AppendLine($"| Date (UTC) | {DateTime.UtcNow:yyyy-MM-dd HH:mm} |");
        sb.AppendLine($"| Machine | {m.Cpu}, {m.Cores} cores, {m.MemoryGiB} GiB RAM, {m.Os} |");
        sb.AppendLine($"| Runtime | .NET {m.Runtime}, TorchSharp {m.TorchSharp}, libtorch {m.LibTorch}, torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY {Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") ?? "unset"} |");
        sb.AppendLine($"| Model | {(s.Model == "cnn" ? "CnnTrainer's default CNN (2 conv blocks 32/64 3×3 + BN + max pool, dense 128 with dropout 0.3), built from the same spec on both sides" : "784-256-128-10 MLP, ReLU, no dropout, no batch norm")}; Adam lr {LearningRate}; batch {s.BatchSize}; seed {s.Seed}; feature standardisation {(s.Standardize ? "on (raw: tensors pre-scaled once)" : "off")} |");
        sb.AppendLine($"| Data | Fashion-MNIST train, {(s.Limit is int lim ? $"first {lim} rows" : "all 60,000 rows")}, no validation split; test: t10k{(s.TestLimit is int tl ? $" (first {tl})" : "")} |");
        sb.AppendLine($"| Load average (1/5/15 min) | {sm.LoadAverage} |");
        sb.AppendLine($"| Runs | {(s.WarmUp ? "untimed warm-up of both sides on 4,096 rows; then " : "")}{s.Rounds} rounds x (raw, pipeline), order alternating (raw first in odd rounds); {s.Epochs} epochs each; first epoch of every run dropped as warm-up |");
        sb.AppendLine();
        sb.AppendLine("## Summary");
        sb.AppendLine();
        sb.AppendLine("| | raw TorchSharp | ML.NET pipeline | pipeline / raw |");
        sb.AppendLine("|---|---:|---:|---:|");
        sb.AppendLine($"| Median seconds per epoch (warm) | {F3(sm.RawEpoch)} | {F3(sm.PipeEpoch)} | **{F3(sm.EpochRatio)}** |");
        sb.AppendLine($"| Median CPU seconds per epoch (warm, all threads) | {F3(sm.RawCpu)} | {F3(sm.PipeCpu)} | {F3(sm.CpuRatio)} |");
        sb.AppendLine($"| Min seconds per epoch (warm) | {F3(sm.RawMin)} | {F3(sm.PipeMin)} | {F3(sm.PipeMin / sm.RawMin)} |");
        sb.AppendLine($"| Median seconds, load + training (whole Fit) | {F2(sm.RawTotal)} | {F2(sm.PipeTotal)} | {F3(sm.TotalRatio)} |");
        sb.AppendLine($"| of which outside the epochs (data loading; pipeline: also the first pass that validates, computes statistics and caches) | {F2(sm.RawOutside)} | {F2(sm.PipeOutside)} | |");
        sb.AppendLine($"| Test accuracy (t10k) | {sm.RawAccuracy:P2} (argmax) | {sm.PipeAccuracy:P2} (ML.NET MicroAccuracy) | |");
        sb.AppendLine();
        sb.AppendLine($"Target: pipeline/raw per epoch <= {Target:F2} — **{(sm.EpochRatio <= Target ? "met" : "missed")}**.");
        sb.AppendLine();
        sb.AppendLine("## Runs");
        sb.AppendLine();
        sb.AppendLine("| Round | Side | " + string.Join(" | ", Enumerable.Range(1, s.Epochs).Select(e => $"Epoch {e} s")) + " | CPU s per epoch | Load s | Outside epochs s | Total s | Final loss | Test accuracy |");
        sb.AppendLine("|---|---|" + string.Concat(Enumerable.Repeat("---:|", s.Epochs)) + "---:|---:|---:|---:|---:|---:|");
        foreach (var r in runs)
            sb.AppendLine($"| {r.Round} | {r.Side} | {string.Join(" | ", r.EpochSeconds.Select(F3))} | {string.Join(", ", r.EpochCpuSeconds.Select(c => double.IsFinite(c) ? F2(c) : "–"))} | {F2(r.LoadSeconds)} | {F2(r.OutsideEpochsSeconds)} | {F2(r.TotalSeconds)} | {r.FinalLoss:F4} | {r.Accuracy:P2} |");
        sb.AppendLine();
        sb.AppendLine("Pipeline epoch seconds are the fitted transformer's `History.Epochs[i].Seconds`; raw epoch seconds are a Stopwatch around");
        sb.AppendLine("the same work (permutation, batches, steps). CPU seconds are the process's CPU time (all threads) over the same span;");
        sb.AppendLine("for the pipeline they run from one epoch's progress report to the next, so its first epoch has none.");
        sb.AppendLine("Totals: raw = read IDX + build (standardised) tensors + epochs; pipeline = `FashionMnist.Load` + the whole `Fit`");
        sb.AppendLine("(schema checks, the validating first pass that computes statistics and caches the tensors, epochs).");
        return sb.ToString();
    }

    private static string DefaultOutput(string model)
    {
        // <repo>/benchmarks/results/...: look upwards from the working directory, then from the app.
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Directory.Packages.props")) && Directory.Exists(Path.Combine(dir.FullName, "benchmarks")))
                    return Path.Combine(dir.FullName, "benchmarks", "results", $"{model}-fashion-mnist.md");
        return Path.Combine("benchmarks", "results", $"{model}-fashion-mnist.md");
    }

    private static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static string Title(Settings s) => s.Model == "cnn" ? "CNN (CnnTrainer default)" : "MLP 784-256-128-10";

    internal static double Median(double[] values)
    {
        if (values.Length == 0) return double.NaN;
        var v = values.OrderBy(x => x).ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    private static string F2(double x) => x.ToString("F2", CultureInfo.InvariantCulture);
    private static string F3(double x) => x.ToString("F3", CultureInfo.InvariantCulture);
}
