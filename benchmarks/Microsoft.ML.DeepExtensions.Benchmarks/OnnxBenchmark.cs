using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// Scoring a fitted model with the library (TorchSharp) versus the same model exported to ONNX and scored by ONNX Runtime,
/// for the default MLP and the default CNN trained on a Fashion-MNIST slice: (a) single-row latency — our
/// <see cref="PredictionEngine{TSrc,TDst}"/> against <see cref="InferenceSession.Run(RunOptions, IReadOnlyCollection{string}, IReadOnlyCollection{OrtValue}, IReadOnlyCollection{string}, IReadOnlyCollection{OrtValue})"/>
/// on a [1, 784] tensor, both reusing their input and output buffers; (b) batch throughput — a cursor over
/// <c>model.Transform(data)</c> (the library scores 512 rows per forward pass) against ORT on batches of 256 rows.
/// Both sides read Score and PredictedLabel, run on the same number of threads (torch intra-op = ORT IntraOpNumThreads),
/// and are measured in alternating order, round after round. ORT's predicted labels are checked against ours on every
/// measured row. <c>--export-model PATH</c> only trains the default MLP and writes its ONNX file (for examples/OnnxScoring).
/// </summary>
internal sealed class OnnxBenchmark(OnnxBenchmark.Settings settings)
{
    public sealed class Settings
    {
        public int Limit { get; set; } = 6_000;
        public int Rows { get; set; } = 2_000;
        public int Warmup { get; set; } = 200;
        public int Rounds { get; set; } = 5;
        public int Batch { get; set; } = 256;
        public int Threads { get; set; } = 1;
        public string Models { get; set; } = "mlp,cnn";
        public string? DataDirectory { get; set; }
        public string? ExportModel { get; set; }
        public string? Output { get; set; } = Path.Combine("benchmarks", "results", "onnx.md");

        public static Settings Parse(string[] args)
        {
            var s = new Settings();
            Program.ParseOptions(args, "onnx", (a, Next) =>
            {
                switch (a)
                {
                    case "--limit": s.Limit = Program.PositiveInt(a, Next()); break;
                    case "--rows": s.Rows = Program.PositiveInt(a, Next()); break;
                    case "--warmup": s.Warmup = Program.PositiveInt(a, Next()); break;
                    case "--rounds": s.Rounds = Program.PositiveInt(a, Next()); break;
                    case "--batch": s.Batch = Program.PositiveInt(a, Next()); break;
                    case "--threads": s.Threads = Program.PositiveInt(a, Next()); break;
                    case "--models": s.Models = Next() ?? throw new ArgumentException("Option --models needs mlp, cnn or mlp,cnn."); break;
                    case "--data": s.DataDirectory = Next() ?? throw new ArgumentException("Option --data needs a folder."); break;
                    case "--export-model": s.ExportModel = Next() ?? throw new ArgumentException("Option --export-model needs a file name."); break;
                    case "--output":
                        var o = Next() ?? throw new ArgumentException("Option --output needs a file ('-' for none).");
                        s.Output = o == "-" ? null : o;
                        break;
                    default: return false;
                }
                return true;
            });
            return s;
        }
    }

    /// <summary>What the PredictionEngine reads.</summary>
    private sealed class Row
    {
        [VectorType(FashionMnist.Pixels)] public float[] Features { get; set; } = [];
    }

    /// <summary>What the PredictionEngine writes (ML.NET's multiclass columns).</summary>
    private sealed class Prediction
    {
        public uint PredictedLabel { get; set; }
        public float[] Score { get; set; } = [];
    }

    private sealed class LabelRow { public uint Label { get; set; } }

    /// <summary>One side's results for one model: latencies (ms) of every timed row, rows/s per round, labels and scores of the first round.</summary>
    private sealed class Side(int rows)
    {
        public List<double> Latencies { get; } = [];
        public List<double> RowsPerSecond { get; } = [];
        public uint[] SingleLabels { get; } = new uint[rows];
        public uint[] BatchLabels { get; } = new uint[rows];
        public float[][] Scores { get; } = new float[rows][];
    }

    public int Run()
    {
        var s = settings;
        var ml = new MLContext(seed: 1);
        // Training data: the 60k train split when installed, else the embedded 10k test split (then the measured rows were seen in training; labels still must agree).
        string split = "train";
        string? trainDir = s.DataDirectory is { } d && File.Exists(Path.Combine(d, "train-labels-idx1-ubyte.gz")) ? d : s.DataDirectory is null ? FashionMnist.FindDirectory("train") : null;
        if (trainDir is null) { split = "t10k"; trainDir = s.DataDirectory ?? FashionMnist.FindDirectory("t10k"); }
        var train = FashionMnist.Load(ml, trainDir, split, s.Limit);
        long trainRows = train.GetRowCount() ?? s.Limit;

        if (s.ExportModel is { } exportPath) return Export(ml, train, $"{trainRows:N0} '{split}' images from {trainDir}", exportPath);

        var test = FashionMnist.Load(ml, s.DataDirectory is { } dd && File.Exists(Path.Combine(dd, "t10k-labels-idx1-ubyte.gz")) ? dd : FashionMnist.FindDirectory("t10k"), "t10k", s.Rows);
        var pixels = ml.Data.CreateEnumerable<Row>(test, false).Select(r => r.Features).ToArray();
        var truth = ml.Data.CreateEnumerable<LabelRow>(test, false).Select(r => r.Label).ToArray();   // 1-based keys
        int n = pixels.Length;

        var info = MachineInfo.Collect();
        string ort = OrtVersion();
        string loadBefore = MachineInfo.LoadAverage();
        var header = new StringBuilder()
            .AppendLine("# Scoring with TorchSharp (the library) vs ONNX Runtime (the exported model)").AppendLine()
            .AppendLine($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {info.Cpu}, {info.Cores} cores; .NET {info.Runtime}; TorchSharp {info.TorchSharp}, libtorch {info.LibTorch}; ONNX Runtime {ort} (CPU execution provider).")
            .AppendLine($"Threads: torch intra-op {s.Threads}, ORT IntraOpNumThreads {s.Threads} (InterOpNumThreads 1, sequential execution, all graph optimisations). "
                + $"Models trained on {trainRows:N0} Fashion-MNIST '{split}' images (MLP: 2 epochs; CNN: 1 epoch, 1 thread); measured on the first {n:N0} 't10k' images"
                + (split == "t10k" ? " (which were part of the training slice: no train split was found)" : "") + ".")
            .AppendLine($"{s.Rounds} rounds in alternating order (TorchSharp first in odd rounds, ORT first in even ones). "
                + $"Latency: {s.Warmup} untimed rows, then {n:N0} timed single-row calls per side and round (p50/p99 over all {n * s.Rounds:N0}); "
                + $"TorchSharp: PredictionEngine<Row, Prediction>.Predict(row, ref prediction); ORT: Run with OrtValues over reused [1, 784] input and [1, 10] / [1] output buffers. "
                + $"Throughput: one untimed pass per side, then {n:N0} rows per round and side, median rows/s; TorchSharp: a cursor over model.Transform(data) reading Score and PredictedLabel (the library scores 512 rows per forward pass); ORT: batches of {s.Batch} rows copied into a reused buffer.")
            .AppendLine("Speed-up = TorchSharp time / ORT time (> 1: ORT is faster).");
        Console.WriteLine(header);

        DeepRuntime.EnsureNativeLibrary();
        var table = new StringBuilder()
            .AppendLine("| model | fit s | .onnx KB | TorchSharp p50 ms | p99 ms | ORT p50 ms | p99 ms | p50 speed-up | p99 speed-up | TorchSharp rows/s | ORT rows/s | throughput speed-up | labels agree (single / batch) | accuracy ours / ORT | max abs score diff |")
            .AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        var notes = new List<string>();
        var dir = Directory.CreateTempSubdirectory("deepext-onnx-").FullName;
        try
        {
            foreach (var name in s.Models.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var fit = Stopwatch.StartNew();
                using DeepTransformer model = name switch
                {
                    "mlp" => ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 2 }).Fit(train),
                    "cnn" => ml.Deep().Cnn(new CnnTrainer.Options { Epochs = 1, NumberOfThreads = 1 }).Fit(train),
                    _ => throw new ArgumentException($"Unknown model '{name}'; use mlp or cnn."),
                };
                double fitSeconds = fit.Elapsed.TotalSeconds;
                var path = Path.Combine(dir, $"{name}.onnx");
                model.ExportOnnx(path);
                long onnxBytes = new FileInfo(path).Length;
                Console.WriteLine($"{name}: fitted in {fitSeconds:F1} s, exported {onnxBytes / 1024.0:F0} KB");

                torch.set_num_threads(s.Threads);   // after Fit: the trainers restore the thread count they found
                using var sessionOptions = new SessionOptions
                {
                    IntraOpNumThreads = s.Threads,
                    InterOpNumThreads = 1,
                    ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                    GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
                };
                using var session = new InferenceSession(path, sessionOptions);
                var engine = ml.Model.CreatePredictionEngine<Row, Prediction>(model, new PredictionEngineOptions { OwnsTransformer = false });
                var ours = new Side(n);
                var onnx = new Side(n);
                var rows = pixels.Select(p => new Row { Features = p }).ToArray();
                var data = ml.Data.LoadFromEnumerable(rows, SchemaDefinition.Create(typeof(Row)));
                using var latency = new OrtSingleRow(session, pixels[0].Length);

                // Untimed: one full pass each way (every batch shape), so JIT, allocators and thread pools are warm before round 1.
                ThroughputOurs(model, data, null);
                ThroughputOrt(session, pixels, s.Batch, null);

                for (int round = 1; round <= s.Rounds; round++)
                {
                    bool first = round == 1;
                    var order = round % 2 == 1 ? new[] { "torch", "ort" } : ["ort", "torch"];
                    foreach (var side in order)
                    {
                        Collect();
                        if (side == "torch") LatencyOurs(engine, rows, ours, first);
                        else LatencyOrt(latency, pixels, onnx, first);
                    }
                    foreach (var side in order)
                    {
                        Collect();
                        if (side == "torch") ours.RowsPerSecond.Add(ThroughputOurs(model, data, first ? ours.BatchLabels : null));
                        else onnx.RowsPerSecond.Add(ThroughputOrt(session, pixels, s.Batch, first ? onnx.BatchLabels : null));
                    }
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  round {round}/{s.Rounds} ({string.Join(", ", order)}): p50 {Pct(ours.Latencies, 0.5):F3} / {Pct(onnx.Latencies, 0.5):F3} ms, rows/s {ours.RowsPerSecond[^1]:F0} / {onnx.RowsPerSecond[^1]:F0} (TorchSharp / ORT)"));
                }
                engine.Dispose();

                int agreeSingle = Enumerable.Range(0, n).Count(i => ours.SingleLabels[i] == onnx.SingleLabels[i]);
                int agreeBatch = Enumerable.Range(0, n).Count(i => ours.BatchLabels[i] == onnx.BatchLabels[i] && ours.BatchLabels[i] == ours.SingleLabels[i]);
                double accOurs = Enumerable.Range(0, n).Count(i => ours.SingleLabels[i] == truth[i]) / (double)n;
                double accOrt = Enumerable.Range(0, n).Count(i => onnx.SingleLabels[i] == truth[i]) / (double)n;
                double maxDiff = Enumerable.Range(0, n).Max(i => ours.Scores[i].Zip(onnx.Scores[i], (a, b) => Math.Abs(a - b)).Max());
                double p50T = Pct(ours.Latencies, 0.5), p99T = Pct(ours.Latencies, 0.99), p50O = Pct(onnx.Latencies, 0.5), p99O = Pct(onnx.Latencies, 0.99);
                double rpsT = Median(ours.RowsPerSecond), rpsO = Median(onnx.RowsPerSecond);
                string line = string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {fitSeconds:F1} | {onnxBytes / 1024.0:F0} | {p50T:F3} | {p99T:F3} | {p50O:F3} | {p99O:F3} | {p50T / p50O:F2}× | {p99T / p99O:F2}× | {rpsT:F0} | {rpsO:F0} | {rpsO / rpsT:F2}× | {agreeSingle}/{n} / {agreeBatch}/{n} | {accOurs:P2} / {accOrt:P2} | {maxDiff:E1} |");
                Console.WriteLine(line);
                table.AppendLine(line);
                if (rpsT < 1000 / p50T)
                    notes.Add(string.Create(CultureInfo.InvariantCulture,
                        $"{name}: TorchSharp's batched scoring ({rpsT:F0} rows/s) is slower than its own single-row path at the p50 ({1000 / p50T:F0} rows/s)."));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        table.AppendLine()
            .AppendLine($"Load average: {loadBefore} before, {MachineInfo.LoadAverage()} after. "
                + "Labels agree: ORT's PredictedLabel equals ours on that many measured rows (single: the latency runs; batch: the throughput runs, also equal to the single-row labels). "
                + "Max abs score diff: the largest difference between the two Score (softmax) vectors over the measured rows.");
        foreach (var note in notes) table.AppendLine().AppendLine($"Note — {note}");
        var report = header.AppendLine().Append(table).ToString();
        Console.WriteLine();
        Console.WriteLine(report);
        if (s.Output is { } output)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
            File.WriteAllText(output, report);
            Console.WriteLine($"Wrote {Path.GetFullPath(output)}");
        }
        return 0;
    }

    /// <summary>Trains the default MLP (2 epochs) on the slice and writes its ONNX file.</summary>
    private static int Export(MLContext ml, IDataView train, string source, string path)
    {
        Console.WriteLine($"Training the default MLP (2 epochs) on {source} ...");
        var t = Stopwatch.StartNew();
        using var model = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 2 }).Fit(train);
        model.ExportOnnx(path);
        Console.WriteLine($"Fitted in {t.Elapsed.TotalSeconds:F1} s; wrote {Path.GetFullPath(path)} ({new FileInfo(path).Length / 1024.0:F0} KB). "
            + "Input 'Features' float [N, 784]; outputs 'Score' float [N, 10], 'PredictedLabel' uint32 [N] (1-based).");
        return 0;
    }

    private void LatencyOurs(PredictionEngine<Row, Prediction> engine, Row[] rows, Side side, bool keep)
    {
        var p = new Prediction();
        for (int i = 0; i < settings.Warmup; i++) engine.Predict(rows[i % rows.Length], ref p);
        for (int i = 0; i < rows.Length; i++)
        {
            long t = Stopwatch.GetTimestamp();
            engine.Predict(rows[i], ref p);
            side.Latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            if (keep) { side.SingleLabels[i] = p.PredictedLabel; side.Scores[i] = [.. p.Score]; }
        }
    }

    private void LatencyOrt(OrtSingleRow session, float[][] pixels, Side side, bool keep)
    {
        for (int i = 0; i < settings.Warmup; i++) session.Predict(pixels[i % pixels.Length]);
        for (int i = 0; i < pixels.Length; i++)
        {
            long t = Stopwatch.GetTimestamp();
            uint label = session.Predict(pixels[i]);
            side.Latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            if (keep) { side.SingleLabels[i] = label; side.Scores[i] = [.. session.Score]; }
        }
    }

    /// <summary>Reads Score and PredictedLabel of every row of <c>model.Transform(data)</c>; returns rows/s.</summary>
    private static double ThroughputOurs(ITransformer model, IDataView data, uint[]? labels)
    {
        long t = Stopwatch.GetTimestamp();
        var scored = model.Transform(data);
        var scoreColumn = scored.Schema["Score"];
        var labelColumn = scored.Schema["PredictedLabel"];
        using var cursor = scored.GetRowCursor([scoreColumn, labelColumn]);
        var getScore = cursor.GetGetter<VBuffer<float>>(scoreColumn);
        var getLabel = cursor.GetGetter<uint>(labelColumn);
        VBuffer<float> score = default;
        uint label = 0;
        int i = 0;
        while (cursor.MoveNext())
        {
            getScore(ref score);
            getLabel(ref label);
            if (labels is not null) labels[i] = label;
            i++;
        }
        return i / Stopwatch.GetElapsedTime(t).TotalSeconds;
    }

    /// <summary>Scores <paramref name="pixels"/> in batches of <paramref name="batch"/> rows, reading Score and PredictedLabel; returns rows/s.</summary>
    private static double ThroughputOrt(InferenceSession session, float[][] pixels, int batch, uint[]? labels)
    {
        long t = Stopwatch.GetTimestamp();
        int size = pixels[0].Length;
        var buffer = new float[batch * size];
        string[] inputNames = [session.InputNames[0]], outputNames = ["Score", "PredictedLabel"];
        using var runOptions = new RunOptions();
        for (int start = 0; start < pixels.Length; start += batch)
        {
            int rows = Math.Min(batch, pixels.Length - start);
            for (int r = 0; r < rows; r++) pixels[start + r].CopyTo(buffer, r * size);
            using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer.AsMemory(0, rows * size), [rows, size]);
            using var outputs = session.Run(runOptions, inputNames, [input], outputNames);
            var score = outputs[0].GetTensorDataAsSpan<float>();   // read, as the cursor reads ours
            var label = outputs[1].GetTensorDataAsSpan<uint>();
            if (label.Length != rows || score.Length % rows != 0) throw new InvalidOperationException($"ORT returned {score.Length} scores and {label.Length} labels for {rows} rows.");
            if (labels is not null) label.CopyTo(labels.AsSpan(start, rows));
        }
        return pixels.Length / Stopwatch.GetElapsedTime(t).TotalSeconds;
    }

    /// <summary>ORT single-row scoring with OrtValues over reused input and output buffers (the fastest ORT path from .NET).</summary>
    private sealed class OrtSingleRow : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly RunOptions _runOptions = new();
        private readonly float[] _input;
        private readonly uint[] _label = new uint[1];
        private readonly OrtValue[] _inputs, _outputs;
        private readonly string[] _inputNames, _outputNames = ["Score", "PredictedLabel"];

        public OrtSingleRow(InferenceSession session, int size)
        {
            _session = session;
            _input = new float[size];
            int classes = (int)session.OutputMetadata["Score"].Dimensions[^1];
            Score = new float[classes];
            _inputNames = [session.InputNames[0]];
            _inputs = [OrtValue.CreateTensorValueFromMemory(_input, [1, size])];
            _outputs = [OrtValue.CreateTensorValueFromMemory(Score, [1, classes]), OrtValue.CreateTensorValueFromMemory(_label, [1])];
        }

        /// <summary>The last row's Score (softmax), written in place by ORT.</summary>
        public float[] Score { get; }

        public uint Predict(float[] features)
        {
            features.CopyTo(_input, 0);
            _session.Run(_runOptions, _inputNames, _inputs, _outputNames, _outputs);
            return _label[0];
        }

        public void Dispose()
        {
            foreach (var v in _inputs.Concat(_outputs)) v.Dispose();
            _runOptions.Dispose();
        }
    }

    private static double Pct(List<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[(int)Math.Min(sorted.Length - 1, Math.Floor(q * sorted.Length))];
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static string OrtVersion()
    {
        var a = typeof(InferenceSession).Assembly;
        var v = a.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? a.GetName().Version?.ToString() ?? "?";
        int plus = v.IndexOf('+');
        return plus > 0 ? v[..plus] : v;
    }
}
