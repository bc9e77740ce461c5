using System.Globalization;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>Whether a candidate is a deep network (searched, trained by epochs) or a classic ML.NET trainer.</summary>
public enum CandidateKind
{
    /// <summary>A Microsoft.ML.DeepExtensions network: random search with successive halving over its knobs.</summary>
    Deep,
    /// <summary>A classic ML.NET trainer with fixed, sensible settings.</summary>
    Classic,
    /// <summary>The weighted ensemble of the finished candidates (greedy ensemble selection on the validation split).</summary>
    Ensemble,
}

/// <summary>What kind of feature column a candidate needs.</summary>
[Flags]
public enum CandidateInputs
{
    /// <summary>A numeric feature vector (any tabular data after featurization).</summary>
    Vector = 1,
    /// <summary>A feature vector that is an image of a known <see cref="ImageShape"/>.</summary>
    Image = 2,
    /// <summary>A sequence of token ids (text after tokenization and key mapping).</summary>
    Tokens = 4,
    /// <summary>The raw text the features were made from (<see cref="ComparisonOptions.TextColumnName"/>), for pretrained text encoders.</summary>
    Text = 8,
}

/// <summary>What a candidate's builder knows about the data it will train on.</summary>
public sealed record CandidateContext
{
    /// <summary>The context the candidate's estimator is created in (a fresh one per candidate, so it can be stopped at its deadline).</summary>
    public required MLContext Context { get; init; }

    /// <summary>The task (never <see cref="DeepTask.Auto"/>).</summary>
    public required DeepTask Task { get; init; }

    /// <summary>The label column (Boolean, Key or Single, after featurization).</summary>
    public required string LabelColumnName { get; init; }

    /// <summary>The feature column (a float vector, after featurization).</summary>
    public required string FeatureColumnName { get; init; }

    /// <summary>Values in the feature vector (0 for a variable-length token sequence).</summary>
    public required int FeatureCount { get; init; }

    /// <summary>For token-sequence features (a vector of keys): the vocabulary size; 0 otherwise.</summary>
    public int VocabularySize { get; init; }

    /// <summary>Classes of a multiclass label (0 otherwise).</summary>
    public int ClassCount { get; init; }

    /// <summary>The image each feature vector holds, when known (enables image candidates such as the CNN).</summary>
    public ImageShape? ImageShape { get; init; }

    /// <summary>The raw text column the features were made from, when known (enables pretrained text candidates).</summary>
    public string? TextColumnName { get; init; }

    /// <summary>Which inputs the data offers.</summary>
    public CandidateInputs Inputs => (VocabularySize > 0 ? CandidateInputs.Tokens
        : CandidateInputs.Vector | (ImageShape is null ? 0 : CandidateInputs.Image)) | (TextColumnName is null ? 0 : CandidateInputs.Text);

    /// <summary>Seed for every trainer.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Threads per trainer (null: the trainer's default).</summary>
    public int? NumberOfThreads { get; init; }

    /// <summary>The most memory (MB) a deep trainer's step may take (null: the trainer's default).</summary>
    public int? MemoryLimitMegabytes { get; init; }
}

/// <summary>One training run of a candidate: its hyper-parameters, epoch budget, cancellation and progress.</summary>
public sealed class CandidateSetup
{
    /// <summary>The hyper-parameters sampled from the candidate's search space (empty for classic candidates).</summary>
    public HyperParameters Parameters { get; init; } = new();

    /// <summary>Epochs for this run (successive halving raises it rung by rung).</summary>
    public int Epochs { get; init; } = 1;

    /// <summary>Fires at the candidate's deadline or when the whole comparison is cancelled.</summary>
    public CancellationToken CancellationToken { get; init; }

    /// <summary>Receives each epoch of a deep run.</summary>
    public IProgress<EpochRecord>? Progress { get; init; }

    /// <summary>Where a deep run writes its checkpoints (so a later rung continues it); null for none.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>A checkpoint the run continues from: <see cref="Epochs"/> is then the total, counting the epochs already run.</summary>
    public string? ResumeFromCheckpoint { get; init; }

    /// <summary>Early stopping for the run (the budget-driven last phase); null for none.</summary>
    public EarlyStoppingOptions? EarlyStopping { get; init; }

    /// <summary>
    /// Copies what every deep trainer shares — columns, task, epochs, seed, threads, memory limit, checkpoints, early
    /// stopping, cancellation, progress — into
    /// <paramref name="options"/> and returns it.
    /// </summary>
    public T Configure<T>(CandidateContext context, T options) where T : DeepTrainerOptions
    {
        options.LabelColumnName = context.LabelColumnName;
        options.FeatureColumnName = context.FeatureColumnName;
        options.Task = context.Task;
        options.Epochs = Epochs;
        options.Seed = context.Seed;
        options.NumberOfThreads = context.NumberOfThreads;
        options.MemoryLimitMegabytes = context.MemoryLimitMegabytes;
        options.CheckpointDirectory = CheckpointDirectory;
        options.KeepCheckpoints = CheckpointDirectory is null ? 0 : 1;
        options.ResumeFromCheckpoint = ResumeFromCheckpoint;
        if (EarlyStopping is not null) options.EarlyStopping = EarlyStopping;
        options.CancellationToken = CancellationToken;
        options.Progress = Progress;
        return options;
    }
}

/// <summary>Hyper-parameter values by name (what the leaderboard reports as a candidate's best settings).</summary>
public sealed class HyperParameters : Dictionary<string, object>
{
    /// <summary>An empty set.</summary>
    public HyperParameters() : base(StringComparer.Ordinal) { }

    /// <summary>A copy of <paramref name="values"/>.</summary>
    public HyperParameters(IDictionary<string, object> values) : base(values, StringComparer.Ordinal) { }

    /// <summary>The value of <paramref name="name"/> as <typeparamref name="T"/>, or <paramref name="fallback"/> when absent.</summary>
    public T Get<T>(string name, T fallback) => TryGetValue(name, out var v) && v is T t ? t : fallback;

    /// <summary>"name=value, ..." with arrays written as a-b-c.</summary>
    public override string ToString() =>
        string.Join(", ", this.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={Format(p.Value)}"));

    /// <summary>One value as text (arrays as a-b-c, numbers invariant).</summary>
    public static string Format(object value) => value switch
    {
        int[] a => string.Join("-", a),
        double d => d.ToString("G3", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

/// <summary>A discrete search space: each knob has a list of choices; the first choice of each is the default.</summary>
public sealed class SearchSpace
{
    private readonly List<(string Name, object[] Choices)> _knobs = new();

    /// <summary>Adds a knob with its choices (the first is the default).</summary>
    public SearchSpace Add<T>(string name, params T[] choices) where T : notnull
    {
        if (choices.Length == 0) throw new ArgumentException($"Knob '{name}' needs at least one choice.", nameof(choices));
        _knobs.Add((name, choices.Cast<object>().ToArray()));
        return this;
    }

    /// <summary>The knobs and their choices.</summary>
    public IReadOnlyList<(string Name, object[] Choices)> Knobs => _knobs;

    /// <summary>The number of distinct configurations.</summary>
    public long Size => _knobs.Aggregate(1L, (n, k) => n * k.Choices.Length);

    /// <summary>The default configuration (each knob's first choice).</summary>
    public HyperParameters Default()
    {
        var p = new HyperParameters();
        foreach (var (name, choices) in _knobs) p[name] = choices[0];
        return p;
    }

    /// <summary>A uniformly random configuration.</summary>
    public HyperParameters Sample(Random random)
    {
        var p = new HyperParameters();
        foreach (var (name, choices) in _knobs) p[name] = choices[random.Next(choices.Length)];
        return p;
    }

    /// <summary>Up to <paramref name="count"/> distinct configurations: the default first, then random ones.</summary>
    public IReadOnlyList<HyperParameters> Configurations(int count, Random random)
    {
        var result = new List<HyperParameters> { Default() };
        var seen = new HashSet<string> { result[0].ToString() };
        for (int attempt = 0; result.Count < Math.Min(count, Size) && attempt < 100 * count; attempt++)
        {
            var p = Sample(random);
            if (seen.Add(p.ToString())) result.Add(p);
        }
        return result;
    }
}

/// <summary>
/// One entry of the candidate registry: everything the comparison needs to know about a model family. Adding a family to
/// the comparison is one <see cref="CandidateRegistry.Add"/> call with one of these.
/// </summary>
public sealed class CandidateFactory
{
    /// <summary>The name shown on the leaderboard, e.g. "MLP" or "LightGBM".</summary>
    public required string Name { get; init; }

    /// <summary>Deep (searched) or classic.</summary>
    public required CandidateKind Kind { get; init; }

    /// <summary>The tasks the candidate can solve.</summary>
    public required IReadOnlyList<DeepTask> Tasks { get; init; }

    /// <summary>The input the candidate needs (all flags must be offered by the data).</summary>
    public CandidateInputs Inputs { get; init; } = CandidateInputs.Vector;

    /// <summary>
    /// For a candidate that needs <see cref="CandidateInputs.Tokens"/>: it also applies when the data offers only the raw
    /// <see cref="CandidateInputs.Text"/> (a featurized vector plus <see cref="CandidateContext.TextColumnName"/>), because
    /// its builder tokenizes the text itself. The built-in LSTM and transformer do.
    /// </summary>
    public bool TokenizesText { get; init; }

    /// <summary>The knobs random search samples (deep candidates); null or empty: the builder's defaults only.</summary>
    public SearchSpace? SearchSpace { get; init; }

    /// <summary>Epochs of a full-length run (the top rung of successive halving). Ignored for classic candidates.</summary>
    public int MaxEpochs { get; init; } = 10;

    /// <summary>Settings reported for classic candidates (their fixed hyper-parameters).</summary>
    public HyperParameters? FixedParameters { get; init; }

    /// <summary>Builds the estimator for one run; it reads the featurized label and feature columns.</summary>
    public required Func<CandidateContext, CandidateSetup, IEstimator<ITransformer>> Build { get; init; }

    /// <summary>Whether the candidate applies to data described by <paramref name="context"/>.</summary>
    public bool AppliesTo(CandidateContext context) => Tasks.Contains(context.Task)
        && ((context.Inputs & Inputs) == Inputs || (TokenizesText && Inputs == CandidateInputs.Tokens && context.Inputs.HasFlag(CandidateInputs.Text)));

    /// <inheritdoc />
    public override string ToString() => $"{Name} ({Kind}: {string.Join(", ", Tasks)})";
}

/// <summary>
/// The candidates a comparison draws from. <see cref="Default"/> holds the deep families of this library and the classic
/// ML.NET trainers; a new family joins with one <see cref="Add"/>.
/// </summary>
public sealed class CandidateRegistry
{
    private readonly List<CandidateFactory> _factories = new();

    /// <summary>The registry comparisons use unless given another: deep and classic candidates (see <see cref="CreateDefault"/>).</summary>
    public static CandidateRegistry Default { get; } = CreateDefault();

    /// <summary>A new registry holding the built-in deep (<see cref="DeepCandidates"/>) and classic (<see cref="ClassicCandidates"/>) candidates.</summary>
    public static CandidateRegistry CreateDefault()
    {
        var registry = new CandidateRegistry();
        foreach (var f in DeepCandidates.All) registry.Add(f);
        foreach (var f in ClassicCandidates.All) registry.Add(f);
        return registry;
    }

    /// <summary>Registers a candidate (replacing one of the same name).</summary>
    public CandidateRegistry Add(CandidateFactory factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        _factories.RemoveAll(f => string.Equals(f.Name, factory.Name, StringComparison.OrdinalIgnoreCase));
        _factories.Add(factory);
        return this;
    }

    /// <summary>Removes the candidate called <paramref name="name"/>; true when it was there.</summary>
    public bool Remove(string name) => _factories.RemoveAll(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase)) > 0;

    /// <summary>The registered candidates in registration order.</summary>
    public IReadOnlyList<CandidateFactory> Candidates => _factories;

    /// <summary>The candidate called <paramref name="name"/> (case-insensitive), or null.</summary>
    public CandidateFactory? Find(string name) => _factories.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase));
}
