using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>Options of a <see cref="DeepComparison"/>.</summary>
public sealed class ComparisonOptions
{
    /// <summary>The label column (after <see cref="Featurizer"/>): Boolean → binary, Key → multiclass, Single → regression.</summary>
    public string LabelColumnName { get; set; } = "Label";

    /// <summary>The float-vector feature column (after <see cref="Featurizer"/>).</summary>
    public string FeatureColumnName { get; set; } = "Features";

    /// <summary>The task; <see cref="DeepTask.Auto"/> infers it from the label column's type.</summary>
    public DeepTask Task { get; set; } = DeepTask.Auto;

    /// <summary>Optional featurization (one-hot, concatenation, ...), fitted on the training part only and put in front of the best model.</summary>
    public IEstimator<ITransformer>? Featurizer { get; set; }

    /// <summary>The image in each feature vector, when the features are pixels (enables the CNN).</summary>
    public ImageShape? ImageShape { get; set; }

    /// <summary>
    /// The raw text column the features were made from (e.g. "Text" before <c>TokenizeIntoWords</c>), when there is one:
    /// enables text candidates that read text themselves, such as a fine-tuned pretrained encoder (<see cref="PretrainedCandidates"/>).
    /// </summary>
    public string? TextColumnName { get; set; }

    /// <summary>Wall-clock budget for the whole run. Default 10 minutes.</summary>
    public TimeSpan TimeBudget { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Budget per candidate. Null (default): classic candidates run first, the cheapest first, and each may use twice an
    /// equal share of the time left, at most half of it (a classic trainer stopped early has no model; they usually need
    /// far less); deep candidates, which keep the epochs they finished, share what remains equally. Time a candidate
    /// leaves over goes to the later ones.
    /// </summary>
    public TimeSpan? CandidateTimeBudget { get; set; }

    /// <summary>Candidate names to run (case-insensitive); null: every registered candidate that applies to the data.</summary>
    public IReadOnlyList<string>? Candidates { get; set; }

    /// <summary>Where candidates come from; null: <see cref="CandidateRegistry.Default"/>.</summary>
    public CandidateRegistry? Registry { get; set; }

    /// <summary>Configurations random search samples for each deep candidate (the first is the family's default). Default 4; 1 disables search.</summary>
    public int Trials { get; set; } = 4;

    /// <summary>Successive halving's factor: after each rung the best 1/η configurations continue with η× the epochs. Default 2.</summary>
    public int HalvingFactor { get; set; } = 2;

    /// <summary>Every deep candidate's full-length epochs, the top rung of successive halving (null: each family's own <see cref="CandidateFactory.MaxEpochs"/>).</summary>
    public int? MaxEpochs { get; set; }

    /// <summary>Fraction of the data held out as the validation split every candidate is measured on (when no validation data is given and <see cref="Folds"/> ≤ 1). Default 0.2.</summary>
    public double ValidationFraction { get; set; } = 0.2;

    /// <summary>k-fold cross-validation when ≥ 2 (metrics averaged over folds); default 1: one validation split.</summary>
    public int Folds { get; set; } = 1;

    /// <summary>The metric the leaderboard is ranked by (see <see cref="Metrics"/>); null: Accuracy (binary), MicroAccuracy (multiclass), RSquared (regression).</summary>
    public string? RankBy { get; set; }

    /// <summary>Seed for the split, the search and every trainer.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>Threads per trainer (null: each trainer's default). 1 makes timings comparable and avoids spinning threads on a busy machine.</summary>
    public int? NumberOfThreads { get; set; }

    /// <summary>
    /// Add a weighted ensemble of the finished candidates as its own leaderboard row (Caruana et al. 2004's greedy
    /// selection on the validation split, metrics cross-fitted; it may become the best model). Default true.
    /// </summary>
    public bool Ensemble { get; set; } = true;

    /// <summary>
    /// The most memory (MB) a deep candidate's training step may take by its network's estimate; a larger configuration
    /// fails that candidate with the reason, before it allocates (see <see cref="DeepTrainerOptions.MemoryLimitMegabytes"/>),
    /// and the run goes on. Null: each trainer's default, 80 % of the process's memory.
    /// </summary>
    public int? CandidateMemoryLimitMegabytes { get; set; }

    /// <summary>
    /// Where each candidate trains. <see cref="CandidateIsolation.InProcess"/> (the default) needs nothing else;
    /// <see cref="CandidateIsolation.ChildProcess"/> runs each one in a worker process started with
    /// <see cref="WorkerCommand"/>, so a native abort, a hang or memory beyond the limit costs only that candidate
    /// (reported <see cref="CandidateStatus.Failed"/> or <see cref="CandidateStatus.TimedOut"/> with the reason), and its
    /// peak memory is its own process's.
    /// </summary>
    public CandidateIsolation Isolation { get; set; } = CandidateIsolation.InProcess;

    /// <summary>
    /// The program and arguments that start a worker for <see cref="CandidateIsolation.ChildProcess"/>; the job file's
    /// path is appended. The program passes it to <see cref="CandidateWorker.Run"/> with the same candidate registry as
    /// this run (<c>deepext</c> does both: its hidden <c>worker</c> command). <see cref="CandidateWorker.CommandForThisProgram"/>
    /// builds one for the running program.
    /// </summary>
    public IReadOnlyList<string>? WorkerCommand { get; set; }

    /// <summary>Single-row predictions timed for the p50/p95 latency (at most 3 s of them, at least 20). Default 200.</summary>
    public int LatencySamples { get; set; } = 200;

    /// <summary>Receives candidate and epoch events.</summary>
    public IProgress<ComparisonProgress>? Progress { get; set; }

    /// <summary>Stops the run: the candidate in flight is reported as cancelled, finished ones are kept.</summary>
    public CancellationToken CancellationToken { get; set; }

    /// <summary>Checks the options; throws <see cref="ArgumentException"/> naming the bad one.</summary>
    public void Validate()
    {
        if (TimeBudget <= TimeSpan.Zero) throw new ArgumentException($"TimeBudget must be positive; got {TimeBudget}.", nameof(TimeBudget));
        if (CandidateTimeBudget is { } c && c <= TimeSpan.Zero) throw new ArgumentException($"CandidateTimeBudget must be positive; got {c}.", nameof(CandidateTimeBudget));
        if (Trials < 1) throw new ArgumentException($"Trials must be at least 1; got {Trials}.", nameof(Trials));
        if (HalvingFactor < 2) throw new ArgumentException($"HalvingFactor must be at least 2; got {HalvingFactor}.", nameof(HalvingFactor));
        if (MaxEpochs is < 1) throw new ArgumentException($"MaxEpochs must be at least 1; got {MaxEpochs}.", nameof(MaxEpochs));
        if (Candidates is { Count: 0 }) throw new ArgumentException("Candidates is empty: name at least one, or leave it null for every candidate that applies.", nameof(Candidates));
        if (Folds < 1) throw new ArgumentException($"Folds must be at least 1; got {Folds}.", nameof(Folds));
        if (!(ValidationFraction > 0 && ValidationFraction < 1)) throw new ArgumentException($"ValidationFraction must be in (0, 1); got {ValidationFraction}.", nameof(ValidationFraction));
        if (Isolation == CandidateIsolation.ChildProcess && WorkerCommand is not { Count: > 0 })
            throw new ArgumentException("Isolation ChildProcess needs WorkerCommand: the program that runs CandidateWorker.Run (deepext sets it to its own 'worker' command).", nameof(WorkerCommand));
        if (CandidateMemoryLimitMegabytes is < 1) throw new ArgumentException($"CandidateMemoryLimitMegabytes must be positive; got {CandidateMemoryLimitMegabytes}.", nameof(CandidateMemoryLimitMegabytes));
        if (LatencySamples < 1) throw new ArgumentException($"LatencySamples must be at least 1; got {LatencySamples}.", nameof(LatencySamples));
    }
}

/// <summary>Where a comparison's candidates train (see <see cref="ComparisonOptions.Isolation"/>).</summary>
public enum CandidateIsolation
{
    /// <summary>In the comparison's own process, one after another.</summary>
    InProcess,
    /// <summary>Each in a worker process of its own, watched for its memory and time and killed beyond them.</summary>
    ChildProcess,
}

/// <summary>What a comparison is doing, for progress bars.</summary>
/// <param name="Candidate">The candidate in flight.</param>
/// <param name="Index">Its 0-based position among the candidates of the run.</param>
/// <param name="Count">Candidates in the run.</param>
/// <param name="Stage">"started", "trial", "epoch", "measuring", or the finished status ("Completed", "Failed", ...).</param>
/// <param name="Message">A human-readable line.</param>
/// <param name="Elapsed">Time since the run started.</param>
/// <param name="Budget">The run's time budget.</param>
public sealed record ComparisonProgress(string Candidate, int Index, int Count, string Stage, string Message, TimeSpan Elapsed, TimeSpan Budget)
{
    /// <summary>The epoch, for "epoch" events.</summary>
    public EpochRecord? Epoch { get; init; }
}
