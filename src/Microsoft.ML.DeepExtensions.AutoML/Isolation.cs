using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>
/// The worker side of <see cref="CandidateIsolation.ChildProcess"/>: a program started with
/// <see cref="ComparisonOptions.WorkerCommand"/> calls <see cref="Run"/> with the job file it was given. The worker reads
/// the comparison's folds from disk, trains, evaluates and measures one candidate exactly as an in-process run does,
/// writes its leaderboard row and model next to the job, and reports progress on standard output.
/// </summary>
public static class CandidateWorker
{
    internal const string ProgressPrefix = "@deepext-progress ";
    internal const string ResultFile = "entry.json";
    internal const string ModelFile = "model.zip";
    internal const string ScoresFile = "scores.json";

    internal static readonly JsonSerializerOptions Json = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>
    /// Runs the job in <paramref name="jobPath"/> with the candidates of <paramref name="registry"/> (the same registry the
    /// comparison was given) and returns the process exit code: 0 when a result was written, whatever the candidate's status.
    /// </summary>
    public static int Run(string jobPath, CandidateRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        var job = JsonSerializer.Deserialize<WorkerJob>(File.ReadAllText(jobPath), Json)
            ?? throw new InvalidDataException($"Job file '{jobPath}' is empty.");
        var ml = new MLContext(job.Options.Seed);
        var options = job.Options.ToOptions(registry);
        options.Progress = new ProgressWriter();
        var comparison = new DeepComparison(ml, options);
        // Cached like the comparison's own folds: every epoch and trial reads them again.
        IDataView Load(string path) => ml.Data.Cache(ml.Data.LoadFromBinary(path));
        var folds = job.Folds.Select(k => (Load(k[0]), Load(k[1]))).ToList();
        var entry = new LeaderboardEntry { Name = job.Candidate, Kind = job.Kind };
        if (registry.Find(job.Candidate) is not { } factory)
            (entry.Status, entry.Error) = (CandidateStatus.Failed, $"the worker does not know candidate '{job.Candidate}': its registry differs from the comparison's");
        else
        {
            entry = new LeaderboardEntry { Name = factory.Name, Kind = factory.Kind };
            // The model is saved where the comparison reads it back, once: its size is measured on that file.
            comparison.Attempt(factory, comparison.Describe(folds[0].Item1.Schema), folds, entry, TimeSpan.FromSeconds(job.BudgetSeconds),
                (stage, message, epoch) => options.Progress.Report(new ComparisonProgress(factory.Name, 0, 1, stage, message, TimeSpan.Zero, options.TimeBudget) { Epoch = epoch }),
                Path.Combine(job.Output, ModelFile));
        }
        if (entry.ValidationScores is { } scores) File.WriteAllText(Path.Combine(job.Output, ScoresFile), JsonSerializer.Serialize(scores, Json));
        // Hyper-parameters travel as text (they are shown, not reused); the learning curve travels inside the model.
        entry.Parameters = new HyperParameters(entry.Parameters.ToDictionary(p => p.Key, p => (object)HyperParameters.Format(p.Value)));
        entry.History = null;
        File.WriteAllText(Path.Combine(job.Output, ResultFile), JsonSerializer.Serialize(entry, Json));
        return 0;
    }

    /// <summary>
    /// The command line that starts the running program again with <paramref name="arguments"/>: its own executable, or
    /// <c>dotnet</c> and its entry assembly when it runs as <c>dotnet app.dll</c>.
    /// </summary>
    public static IReadOnlyList<string> CommandForThisProgram(params string[] arguments)
    {
        string host = Environment.ProcessPath ?? throw new InvalidOperationException("The running program's path is unknown.");
        bool viaDotnet = Path.GetFileNameWithoutExtension(host).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
        string? entry = System.Reflection.Assembly.GetEntryAssembly()?.Location;
        return viaDotnet && !string.IsNullOrEmpty(entry) ? [host, entry, .. arguments] : [host, .. arguments];
    }

    // Progress as one JSON line per event on standard output; the parent reads the lines that carry the prefix.
    private sealed class ProgressWriter : IProgress<ComparisonProgress>
    {
        public void Report(ComparisonProgress value)
        {
            var line = JsonSerializer.Serialize(new ProgressLine(value.Stage, value.Message, value.Epoch), Json);
            lock (this) Console.Out.WriteLine(ProgressPrefix + line);
        }
    }
}

internal sealed record ProgressLine(string Stage, string Message, EpochRecord? Epoch);

/// <summary>What a worker is asked to do: one candidate, the folds' files, the options that shape its run.</summary>
internal sealed record WorkerJob(string Candidate, CandidateKind Kind, string[][] Folds, string Output, double BudgetSeconds, WorkerOptions Options);

/// <summary>The options a candidate's run reads (the rest stay with the comparison).</summary>
internal sealed record WorkerOptions(string LabelColumnName, string FeatureColumnName, DeepTask Task, ImageShape? ImageShape, string? TextColumnName,
    int Trials, int HalvingFactor, int? MaxEpochs, int Seed, int? NumberOfThreads, int? CandidateMemoryLimitMegabytes, int LatencySamples)
{
    public static WorkerOptions From(ComparisonOptions o) => new(o.LabelColumnName, o.FeatureColumnName, o.Task, o.ImageShape, o.TextColumnName,
        o.Trials, o.HalvingFactor, o.MaxEpochs, o.Seed, o.NumberOfThreads, o.CandidateMemoryLimitMegabytes, o.LatencySamples);

    public ComparisonOptions ToOptions(CandidateRegistry registry) => new()
    {
        LabelColumnName = LabelColumnName, FeatureColumnName = FeatureColumnName, Task = Task, ImageShape = ImageShape, TextColumnName = TextColumnName,
        Trials = Trials, HalvingFactor = HalvingFactor, MaxEpochs = MaxEpochs, Seed = Seed, NumberOfThreads = NumberOfThreads,
        CandidateMemoryLimitMegabytes = CandidateMemoryLimitMegabytes, LatencySamples = LatencySamples, Registry = registry, Ensemble = false,
    };
}

/// <summary>
/// The comparison's side of <see cref="CandidateIsolation.ChildProcess"/>: writes the folds once, starts one worker per
/// candidate, forwards its progress, watches its resident memory and time, kills it beyond them, and reads its row and
/// model back. Whatever the worker does — abort, hang, run out of memory — the comparison gets a row with the reason.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    private const long MB = 1 << 20;
    private readonly MLContext _ml;
    private readonly ComparisonOptions _options;
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"deepext-workers-{Environment.ProcessId}-{Guid.NewGuid():N}");
    private readonly string[][] _folds;
    private int _jobs;

    public WorkerPool(MLContext ml, ComparisonOptions options, IReadOnlyList<(IDataView Train, IDataView Valid)> folds)
    {
        (_ml, _options) = (ml, options);
        MemoryLimitBytes = options.CandidateMemoryLimitMegabytes is int mb ? mb * MB : (long)(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes * 0.8);
        Directory.CreateDirectory(_root);
        _folds = folds.Select((k, i) => new[] { Write(k.Train, $"fold{i + 1}-train.idv"), Write(k.Valid, $"fold{i + 1}-valid.idv") }).ToArray();
    }

    /// <summary>The most resident memory a worker may use: the candidate limit, else 80 % of the machine's memory.</summary>
    public long MemoryLimitBytes { get; }

    public LeaderboardEntry Run(CandidateFactory f, LeaderboardEntry entry, TimeSpan budget, DeepComparison.Reporter report)
    {
        string dir = Path.Combine(_root, $"job{++_jobs}");
        Directory.CreateDirectory(dir);
        string jobPath = Path.Combine(dir, "job.json");
        File.WriteAllText(jobPath, JsonSerializer.Serialize(new WorkerJob(f.Name, f.Kind, _folds, dir, budget.TotalSeconds, WorkerOptions.From(_options)), CandidateWorker.Json));

        var command = _options.WorkerCommand!;
        var start = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in command.Skip(1).Append(jobPath)) start.ArgumentList.Add(a);
        var errors = new Queue<string>();
        long peak = 0;
        string? killed = null;
        var status = CandidateStatus.Failed;
        var clock = Stopwatch.StartNew();
        // The worker stops training at 90 % of its budget by itself; beyond its budget plus a margin it is hung.
        var hardLimit = budget * 1.1 + TimeSpan.FromSeconds(20);
        using (var p = new Process { StartInfo = start })
        {
            p.OutputDataReceived += (_, e) => Forward(e.Data, report);
            p.ErrorDataReceived += (_, e) =>
            {
                if (string.IsNullOrWhiteSpace(e.Data)) return;
                lock (errors) { errors.Enqueue(e.Data.Trim()); if (errors.Count > 4) errors.Dequeue(); }
            };
            try
            {
                p.Start();
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                (entry.Status, entry.Error) = (CandidateStatus.Failed, $"the worker command '{string.Join(' ', command)}' could not start: {e.Message}");
                return entry;
            }
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            while (!p.WaitForExit(100))
            {
                try { p.Refresh(); peak = Math.Max(peak, p.WorkingSet64); } catch (InvalidOperationException) { }
                if (peak > MemoryLimitBytes)
                    killed = $"killed: its process used {peak / MB:N0} MB, above the memory limit of {MemoryLimitBytes / MB:N0} MB";
                else if (clock.Elapsed > hardLimit)
                    (killed, status) = ($"killed: no result {hardLimit.TotalSeconds:F0} s after it started (its budget was {budget.TotalSeconds:F0} s)", CandidateStatus.TimedOut);
                else if (_options.CancellationToken.IsCancellationRequested)
                    (killed, status) = ("cancelled while it was training", CandidateStatus.Cancelled);
                if (killed is null) continue;
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                break;
            }
            p.WaitForExit();   // the output readers drain
            if (killed is not null)
                (entry.Status, entry.Error) = (status, killed);
            else if (!File.Exists(Path.Combine(dir, CandidateWorker.ResultFile)))
            {
                string tail;
                lock (errors) tail = string.Join(" | ", errors);
                (entry.Status, entry.Error) = (CandidateStatus.Failed,
                    $"its worker process ended with exit code {p.ExitCode}{Signal(p.ExitCode)} without a result" + (tail.Length > 0 ? $": {Shorten(tail)}" : ""));
            }
            else entry = ReadBack(dir, entry);
        }
        entry.PeakMemoryBytes = Math.Max(entry.PeakMemoryBytes, peak);
        TryDelete(dir);
        return entry;
    }

    // The worker's row, and its model loaded here (the learning curve comes with it).
    private LeaderboardEntry ReadBack(string dir, LeaderboardEntry entry)
    {
        var read = JsonSerializer.Deserialize<LeaderboardEntry>(File.ReadAllText(Path.Combine(dir, CandidateWorker.ResultFile)), CandidateWorker.Json) ?? entry;
        read.Parameters = new HyperParameters(read.Parameters.ToDictionary(p => p.Key, p => (object)(p.Value is JsonElement j ? j.ToString() : p.Value)));
        string modelPath = Path.Combine(dir, CandidateWorker.ModelFile);
        if (read.Status == CandidateStatus.Completed && File.Exists(modelPath))
        {
            using var stream = File.OpenRead(modelPath);
            read.Model = _ml.Model.Load(stream, out _);
            read.History = DeepComparison.FindDeep(read.Model)?.History;
            string scores = Path.Combine(dir, CandidateWorker.ScoresFile);
            if (File.Exists(scores)) read.ValidationScores = JsonSerializer.Deserialize<float[][]>(File.ReadAllText(scores), CandidateWorker.Json);
        }
        return read;
    }

    private static void Forward(string? line, DeepComparison.Reporter report)
    {
        if (line is null || !line.StartsWith(CandidateWorker.ProgressPrefix, StringComparison.Ordinal)) return;
        try
        {
            if (JsonSerializer.Deserialize<ProgressLine>(line.AsSpan(CandidateWorker.ProgressPrefix.Length), CandidateWorker.Json) is { } p)
                report(p.Stage, p.Message, p.Epoch);
        }
        catch (JsonException) { }
    }

    private static string Signal(int exitCode) => exitCode switch
    {
        134 => " (SIGABRT: a native abort)",
        137 => " (SIGKILL: killed, e.g. by the kernel's out-of-memory killer)",
        139 => " (SIGSEGV: a native crash)",
        _ => "",
    };

    private static string Shorten(string s) => s.Length <= 400 ? s : s[..400] + "…";

    private string Write(IDataView data, string name)
    {
        string path = Path.Combine(_root, name);
        using (var stream = File.Create(path)) _ml.Data.SaveAsBinary(data, stream);
        return path;
    }

    private static void TryDelete(string path)
    {
        try { Directory.Delete(path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    public void Dispose() => TryDelete(_root);
}
