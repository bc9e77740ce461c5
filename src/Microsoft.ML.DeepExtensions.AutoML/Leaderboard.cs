using System.Text.Json.Serialization;
using Microsoft.Data.Analysis;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>How a candidate's run ended.</summary>
public enum CandidateStatus
{
    /// <summary>Trained, evaluated and measured.</summary>
    Completed,
    /// <summary>Threw; <see cref="LeaderboardEntry.Error"/> says what.</summary>
    Failed,
    /// <summary>Stopped at its time budget before it had a model (a classic trainer, or a deep one before its first epoch).</summary>
    TimedOut,
    /// <summary>The comparison was cancelled while this candidate ran.</summary>
    Cancelled,
    /// <summary>Not run: the time budget was spent or the run was cancelled before it started.</summary>
    Skipped,
}

/// <summary>One trial of a deep candidate's search: a configuration trained for some epochs and its held-out score.</summary>
/// <param name="Rung">Successive-halving rung (0 = the shortest runs).</param>
/// <param name="Epochs">Epochs trained (fewer when the candidate's deadline stopped it).</param>
/// <param name="Parameters">The configuration.</param>
/// <param name="Score">The trainer's own held-out metric after the last epoch (accuracy, or RMSE for regression); NaN when it failed.</param>
/// <param name="Seconds">Fit time.</param>
public sealed record TrialRecord(int Rung, int Epochs, string Parameters, double Score, double Seconds);

/// <summary>One class's figures for the best model on the validation split.</summary>
/// <param name="Class">The class (the label's value).</param>
/// <param name="Rows">Validation rows of that class.</param>
/// <param name="Precision">Of the rows predicted as this class, the share that are.</param>
/// <param name="Recall">Of the rows of this class, the share predicted as it.</param>
public sealed record ClassMetrics(string Class, long Rows, double Precision, double Recall);

/// <summary>One row of the leaderboard.</summary>
public sealed class LeaderboardEntry
{
    /// <summary>1-based rank by the comparison's metric; 0 for candidates that did not complete.</summary>
    public int Rank { get; set; }

    /// <summary>The candidate's name.</summary>
    public required string Name { get; init; }

    /// <summary>Deep or classic.</summary>
    public required CandidateKind Kind { get; init; }

    /// <summary>How the run ended.</summary>
    public CandidateStatus Status { get; set; }

    /// <summary>The exception's message for failed candidates (or why one was skipped).</summary>
    public string? Error { get; set; }

    /// <summary>The task's ML.NET metrics on the validation split (averaged over folds under k-fold).</summary>
    public Dictionary<string, double> Metrics { get; set; } = new();

    /// <summary>Seconds to fit the returned model (for deep candidates: its final run, without the search before it).</summary>
    public double TrainSeconds { get; set; }

    /// <summary>Seconds the candidate took in all: search, every fold, evaluation and measurements.</summary>
    public double TotalSeconds { get; set; }

    /// <summary>
    /// Peak working set while the candidate trained (bytes; managed and native memory): its worker process's under
    /// <see cref="CandidateIsolation.ChildProcess"/>, else this process's (which includes what earlier candidates left).
    /// </summary>
    public long PeakMemoryBytes { get; set; }

    /// <summary>Median single-row latency through a <c>PredictionEngine</c> (milliseconds).</summary>
    public double LatencyP50Milliseconds { get; set; }

    /// <summary>95th-percentile single-row latency through a <c>PredictionEngine</c> (milliseconds).</summary>
    public double LatencyP95Milliseconds { get; set; }

    /// <summary>Rows per second scoring the validation split in one <c>Transform</c>.</summary>
    public double ThroughputRowsPerSecond { get; set; }

    /// <summary>Size of the candidate's model saved with <c>mlContext.Model.Save</c> (bytes).</summary>
    public long ModelBytes { get; set; }

    /// <summary>Where it trained: "cpu", "cuda:0", ...</summary>
    public string Device { get; set; } = "cpu";

    /// <summary>The hyper-parameters of the returned model (the search's winner, or a classic trainer's fixed settings).</summary>
    public HyperParameters Parameters { get; set; } = new();

    /// <summary>The deep candidate's per-epoch history of its returned model (learning curve); null for classic ones.</summary>
    public TrainingHistory? History { get; set; }

    /// <summary>Every trial of the search (deep candidates).</summary>
    public List<TrialRecord> Trials { get; set; } = new();

    /// <summary>The fitted candidate (on featurized data), when it completed.</summary>
    [JsonIgnore]
    public ITransformer? Model { get; set; }

    /// <summary>
    /// The model's scores on fold 1's validation rows (per row: the class probabilities, the probability or the value),
    /// kept from its evaluation so the weighted ensemble does not score every member again; null when it has none.
    /// </summary>
    [JsonIgnore]
    internal float[][]? ValidationScores { get; set; }

    /// <summary>The value of <paramref name="metric"/>, NaN when absent.</summary>
    public double Metric(string metric) => Metrics.TryGetValue(metric, out var v) ? v : double.NaN;

    /// <inheritdoc />
    public override string ToString() => $"#{Rank} {Name} ({Status})";
}

/// <summary>The outcome of a comparison: the ranked leaderboard and the best model, fitted and ready to save.</summary>
public sealed class ComparisonResult
{
    /// <summary>The task compared on.</summary>
    public required DeepTask Task { get; init; }

    /// <summary>The metric the leaderboard is ranked by.</summary>
    public required string RankBy { get; init; }

    /// <summary>The task's metric names, in column order.</summary>
    public IReadOnlyList<string> MetricNames => AutoML.Metrics.For(Task);

    /// <summary>All candidates: completed ones by rank, then failed, cancelled and skipped ones.</summary>
    public required IReadOnlyList<LeaderboardEntry> Entries { get; init; }

    /// <summary>The best completed candidate, or null when none completed.</summary>
    public LeaderboardEntry? Best => Entries.FirstOrDefault(e => e.Status == CandidateStatus.Completed);

    /// <summary>The best candidate's model with the featurizer in front: it reads the comparison's input columns.</summary>
    [JsonIgnore]
    public ITransformer? BestModel { get; init; }

    /// <summary>The schema <see cref="BestModel"/> reads (save it with the model).</summary>
    [JsonIgnore]
    public DataViewSchema? InputSchema { get; init; }

    /// <summary>Rows in the training and validation parts (the first fold's under k-fold).</summary>
    public (long Train, long Validation) Rows { get; init; }

    /// <summary>Folds (1: one validation split).</summary>
    public int Folds { get; init; } = 1;

    /// <summary>The run's time budget.</summary>
    public TimeSpan TimeBudget { get; init; }

    /// <summary>How long the run took.</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>Whether the run was cancelled (the leaderboard then holds what finished before).</summary>
    public bool Cancelled { get; init; }

    /// <summary>Classification: the best model's precision and recall per class on the validation split (empty otherwise).</summary>
    public IReadOnlyList<ClassMetrics> BestPerClass { get; init; } = [];

    /// <summary>Classification: the best model's confusion matrix on the validation split, [true class][predicted class] (null otherwise).</summary>
    public long[][]? BestConfusion { get; init; }

    /// <summary>
    /// How the run ended: the budget spent (deep candidates stopped by their time), or everything finished or converged
    /// before it — with the share of the budget used.
    /// </summary>
    public string Ending { get; init; } = "";

    /// <summary>A label for the data set, shown in reports.</summary>
    public string DataName { get; set; } = "data";

    /// <summary>Saves <see cref="BestModel"/> with <c>mlContext.Model.Save</c>, atomically (see <see cref="DeepCatalog.SaveModel"/>).</summary>
    public void SaveBestModel(MLContext context, string path)
    {
        if (BestModel is null || InputSchema is null) throw new InvalidOperationException("No candidate completed, so there is no best model to save.");
        context.Deep().SaveModel(BestModel, InputSchema, path);
    }

    /// <summary>The leaderboard as a <see cref="DataFrame"/>: one row per candidate, one column per metric and measurement.</summary>
    public DataFrame ToDataFrame()
    {
        var rows = Entries;
        var columns = new List<DataFrameColumn>
        {
            new Int32DataFrameColumn("Rank", rows.Select(e => e.Rank)),
            new StringDataFrameColumn("Candidate", rows.Select(e => e.Name)),
            new StringDataFrameColumn("Kind", rows.Select(e => e.Kind.ToString())),
            new StringDataFrameColumn("Status", rows.Select(e => e.Status.ToString())),
        };
        foreach (var m in MetricNames) columns.Add(new DoubleDataFrameColumn(m, rows.Select(e => e.Metric(m))));
        columns.Add(new DoubleDataFrameColumn("TrainSeconds", rows.Select(e => e.TrainSeconds)));
        columns.Add(new DoubleDataFrameColumn("TotalSeconds", rows.Select(e => e.TotalSeconds)));
        columns.Add(new DoubleDataFrameColumn("PeakMemoryMB", rows.Select(e => e.PeakMemoryBytes / 1048576.0)));
        columns.Add(new DoubleDataFrameColumn("LatencyP50Ms", rows.Select(e => e.LatencyP50Milliseconds)));
        columns.Add(new DoubleDataFrameColumn("LatencyP95Ms", rows.Select(e => e.LatencyP95Milliseconds)));
        columns.Add(new DoubleDataFrameColumn("ThroughputRowsPerSec", rows.Select(e => e.ThroughputRowsPerSecond)));
        columns.Add(new Int64DataFrameColumn("ModelBytes", rows.Select(e => e.ModelBytes)));
        columns.Add(new StringDataFrameColumn("Device", rows.Select(e => e.Device)));
        columns.Add(new StringDataFrameColumn("Parameters", rows.Select(e => e.Parameters.ToString())));
        columns.Add(new StringDataFrameColumn("Error", rows.Select(e => e.Error ?? "")));
        return new DataFrame(columns);
    }

    /// <inheritdoc />
    public override string ToString() => Reports.ConsoleTable(this);
}
