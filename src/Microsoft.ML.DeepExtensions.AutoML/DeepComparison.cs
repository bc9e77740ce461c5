using System.Diagnostics;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>Entry point on <c>mlContext.Deep()</c>.</summary>
public static class DeepComparisonCatalog
{
    /// <summary>A comparison of deep and classic candidates (see <see cref="DeepComparison"/>).</summary>
    public static DeepComparison Comparison(this DeepCatalog catalog, ComparisonOptions? options = null) =>
        new(catalog.Context, options ?? new ComparisonOptions());
}

/// <summary>
/// Trains deep and classic candidates on the same train/validation split (or the same k folds), measures each one and
/// ranks them: the task's ML.NET metrics, training time, peak memory, single-row latency, batch throughput, model size,
/// device and hyper-parameters. Deep candidates are searched (random configurations, successive halving on epochs,
/// ranked by the trainer's own held-out split so the validation split stays unseen); classic candidates run once with
/// fixed settings. A candidate that throws is reported as failed and the run goes on; cancelling keeps what finished.
/// </summary>
public sealed class DeepComparison
{
    private readonly MLContext _ml;

    /// <summary>Creates a comparison (prefer <c>mlContext.Deep().Comparison(options)</c>).</summary>
    public DeepComparison(MLContext context, ComparisonOptions options)
    {
        _ml = context ?? throw new ArgumentNullException(nameof(context));
        Options = options ?? throw new ArgumentNullException(nameof(options));
        context.Deep();
    }

    /// <summary>The options (read when <see cref="Run"/> starts).</summary>
    public ComparisonOptions Options { get; }

    /// <summary>
    /// Runs the comparison on <paramref name="data"/> (an <see cref="IDataView"/>; a <c>DataFrame</c> is one), split
    /// into train and validation parts by <see cref="ComparisonOptions.ValidationFraction"/> or
    /// <see cref="ComparisonOptions.Folds"/>, or trained on all of it and measured on <paramref name="validationData"/>.
    /// </summary>
    public ComparisonResult Run(IDataView data, IDataView? validationData = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var o = Options;
        o.Validate();
        var clock = Stopwatch.StartNew();

        // 1. The split(s) every candidate shares, featurized once (the featurizer is fitted on the training part).
        List<(IDataView Train, IDataView Valid)> raw =
            validationData is not null ? [(data, validationData)]
            : o.Folds > 1 ? _ml.Data.CrossValidationSplit(data, o.Folds, seed: o.Seed).Select(f => (f.TrainSet, f.TestSet)).ToList()
            : [Split(data)];
        var folds = raw.Select(p =>
        {
            var featurizer = o.Featurizer?.Fit(p.Train);
            return new Fold(featurizer,
                _ml.Data.Cache(featurizer?.Transform(p.Train) ?? p.Train),
                _ml.Data.Cache(featurizer?.Transform(p.Valid) ?? p.Valid));
        }).ToList();
        var context = Describe(folds[0].Train.Schema);

        // 2. The candidates: classic ones first (fast; the time they leave goes to the deep ones).
        var registry = o.Registry ?? CandidateRegistry.Default;
        var entries = new List<LeaderboardEntry>();
        var planned = new List<CandidateFactory>();
        if (o.Candidates is { } names)
        {
            foreach (var name in names)
            {
                var f = registry.Find(name) ?? throw new ArgumentException(
                    $"Unknown candidate '{name}'. Registered: {string.Join(", ", registry.Candidates.Select(c => c.Name))}.", nameof(o.Candidates));
                if (f.AppliesTo(context)) planned.Add(f);
                else entries.Add(new LeaderboardEntry
                {
                    Name = f.Name, Kind = f.Kind, Status = CandidateStatus.Skipped,
                    Error = $"does not apply: it solves {string.Join("/", f.Tasks)} with {f.Inputs} input; the data is {context.Task} with {context.Inputs}"
                        + (f.Inputs.HasFlag(CandidateInputs.Image) && context.ImageShape is null ? " (set ImageShape)" : ""),
                });
            }
        }
        else planned.AddRange(registry.Candidates.Where(f => f.AppliesTo(context)));
        planned = planned.OrderBy(f => f.Kind == CandidateKind.Deep ? 1 : 0).ToList();

        // 3. Each candidate within its share of the time left.
        var finished = new List<LeaderboardEntry>();
        for (int i = 0; i < planned.Count; i++)
        {
            var f = planned[i];
            var entry = new LeaderboardEntry { Name = f.Name, Kind = f.Kind };
            var left = o.TimeBudget - clock.Elapsed;
            if (o.CancellationToken.IsCancellationRequested)
                (entry.Status, entry.Error) = (CandidateStatus.Skipped, "the run was cancelled before it started");
            else if (left <= TimeSpan.Zero)
                (entry.Status, entry.Error) = (CandidateStatus.Skipped, $"the time budget ({o.TimeBudget.TotalSeconds:F0} s) was spent before it started");
            else
            {
                // A classic trainer stopped early keeps nothing, so it may use up to half the time left (they usually
                // need far less); a deep candidate keeps the epochs it finished, so the deep ones share the rest equally.
                var budget = f.Kind == CandidateKind.Classic && planned.Count - i > 1
                    ? left / 2
                    : TimeSpan.FromTicks(left.Ticks / (planned.Count - i));
                if (o.CandidateTimeBudget is { } cap && cap < budget) budget = cap;
                Report(f.Name, i, planned.Count, "started", $"{f.Name}: started (budget {budget.TotalSeconds:F0} s)", clock, null);
                var watch = Stopwatch.StartNew();
                try
                {
                    RunCandidate(f, context, folds, entry, budget, (stage, message, epoch) => Report(f.Name, i, planned.Count, stage, message, clock, epoch));
                    entry.Status = CandidateStatus.Completed;
                }
                catch (Exception e) when (IsCancellation(e) && o.CancellationToken.IsCancellationRequested)
                {
                    (entry.Status, entry.Error) = (CandidateStatus.Cancelled, "cancelled while it was training");
                }
                catch (Exception e) when (IsCancellation(e) || e is TimeoutException)
                {
                    (entry.Status, entry.Error) = (CandidateStatus.TimedOut, $"stopped at its time budget of {budget.TotalSeconds:0.##} s before it had a model");
                }
                catch (Exception e)
                {
                    (entry.Status, entry.Error) = (CandidateStatus.Failed, Describe(e));
                }
                entry.TotalSeconds = watch.Elapsed.TotalSeconds;
                Report(f.Name, i, planned.Count, entry.Status.ToString(),
                    $"{f.Name}: {entry.Status}" + (entry.Error is null ? $" in {entry.TotalSeconds:F1} s" : $": {entry.Error}"), clock, null);
            }
            finished.Add(entry);
        }

        // 4. Rank.
        string rankBy = o.RankBy ?? Metrics.Default(context.Task);
        if (!Metrics.For(context.Task).Contains(rankBy))
            throw new ArgumentException($"RankBy '{rankBy}' is not a {context.Task} metric; use one of {string.Join(", ", Metrics.For(context.Task))}.", nameof(o.RankBy));
        bool higher = Metrics.HigherIsBetter(rankBy);
        var ranked = finished.Where(e => e.Status == CandidateStatus.Completed)
            .OrderBy(e => double.IsNaN(e.Metric(rankBy)) ? 1 : 0)
            .ThenBy(e => higher ? -e.Metric(rankBy) : e.Metric(rankBy))
            .ThenBy(e => e.TrainSeconds)
            .ToList();
        for (int r = 0; r < ranked.Count; r++) ranked[r].Rank = r + 1;
        var rest = finished.Concat(entries).Where(e => e.Status != CandidateStatus.Completed).OrderBy(e => e.Status);
        var best = ranked.FirstOrDefault();
        ITransformer? bestModel = best?.Model is null ? null
            : folds[0].Featurizer is { } fz ? new TransformerChain<ITransformer>(fz, best.Model) : best.Model;
        return new ComparisonResult
        {
            Task = context.Task,
            RankBy = rankBy,
            Entries = [.. ranked, .. rest],
            BestModel = bestModel,
            InputSchema = raw[0].Train.Schema,
            Rows = (Count(folds[0].Train), Count(folds[0].Valid)),
            Folds = folds.Count,
            TimeBudget = o.TimeBudget,
            Elapsed = clock.Elapsed,
            Cancelled = o.CancellationToken.IsCancellationRequested,
        };
    }

    private sealed record Fold(ITransformer? Featurizer, IDataView Train, IDataView Valid);

    private (IDataView, IDataView) Split(IDataView data)
    {
        var s = _ml.Data.TrainTestSplit(data, Options.ValidationFraction, seed: Options.Seed);
        return (s.TrainSet, s.TestSet);
    }

    // The featurized schema → task, sizes and inputs; clear errors before anything trains.
    private CandidateContext Describe(DataViewSchema schema)
    {
        var o = Options;
        var label = schema.GetColumnOrNull(o.LabelColumnName) ?? throw new ArgumentException(
            $"Label column '{o.LabelColumnName}' was not found (after featurization). Available: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => c.Name))}.", o.LabelColumnName);
        var features = schema.GetColumnOrNull(o.FeatureColumnName) ?? throw new ArgumentException(
            $"Feature column '{o.FeatureColumnName}' was not found (after featurization); concatenate the inputs into it (or pass a Featurizer). Available: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => c.Name))}.", o.FeatureColumnName);
        // A known-size float vector (tabular data, pixels), or a vector of keys (token ids for sequence families).
        var vt = features.Type as VectorDataViewType;
        var tokens = vt?.ItemType as KeyDataViewType;
        if (vt is null || (tokens is null && (vt.ItemType != NumberDataViewType.Single || vt.Size == 0)))
            throw new ArgumentException($"Feature column '{o.FeatureColumnName}' must be a known-size vector of Single (or a vector of keys for token sequences); it is {features.Type}.", o.FeatureColumnName);
        var type = label.Type;
        var inferred = type is KeyDataViewType ? DeepTask.MulticlassClassification
            : type == BooleanDataViewType.Instance ? DeepTask.BinaryClassification
            : type == NumberDataViewType.Single ? DeepTask.Regression
            : throw new ArgumentException(
                $"Label column '{o.LabelColumnName}' is {type}; expected Boolean (binary), Key (multiclass: MapValueToKey) or Single (regression: ConvertType).", o.LabelColumnName);
        var task = o.Task == DeepTask.Auto ? inferred : o.Task;
        if (task != inferred)
            throw new ArgumentException($"Task {task} needs a {(task == DeepTask.BinaryClassification ? "Boolean" : task == DeepTask.MulticlassClassification ? "Key" : "Single")} label, but label column '{o.LabelColumnName}' is {type}.", o.LabelColumnName);
        if (o.TextColumnName is { } text && schema.GetColumnOrNull(text)?.Type is not TextDataViewType)
            throw new ArgumentException($"Text column '{text}' must be a Text column (the raw text); it is {schema.GetColumnOrNull(text)?.Type.ToString() ?? "missing"}.", nameof(o.TextColumnName));
        if (o.ImageShape is { } img && (tokens is not null || img.Size != vt.Size))
            throw new ArgumentException($"ImageShape {img} needs {img.Size} values, but feature column '{o.FeatureColumnName}' has {vt.Size}.", o.FeatureColumnName);
        return new CandidateContext
        {
            Context = _ml,
            Task = task,
            LabelColumnName = o.LabelColumnName,
            FeatureColumnName = o.FeatureColumnName,
            FeatureCount = vt.Size,
            VocabularySize = tokens is null ? 0 : (int)tokens.Count,
            ClassCount = type is KeyDataViewType k ? (int)k.Count : 0,
            ImageShape = o.ImageShape,
            TextColumnName = o.TextColumnName,
            Seed = o.Seed,
            NumberOfThreads = o.NumberOfThreads,
        };
    }

    private delegate void Reporter(string stage, string message, EpochRecord? epoch);

    private void RunCandidate(CandidateFactory f, CandidateContext shared, List<Fold> folds, LeaderboardEntry entry, TimeSpan budget, Reporter report)
    {
        // A context of its own: a classic trainer is stopped at the deadline by cancelling it (evaluation uses the comparison's).
        var c = shared with { Context = new MLContext(shared.Seed) };
        using var memory = new PeakMemorySampler();
        // Training stops at 90 % of the budget: evaluation and measurements fit in the rest.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Options.CancellationToken);
        deadline.CancelAfter(budget * 0.9);
        var epochs = new CallbackProgress<EpochRecord>(r => report("epoch", $"{f.Name}: {r}", r));

        // Fold 1: the search (deep) or the one fit (classic).
        ITransformer model;
        CandidateSetup setup;
        if (f.Kind == CandidateKind.Deep)
            (model, setup, entry.TrainSeconds) = Search(f, c, folds[0].Train, deadline.Token, epochs, entry, report, budget);
        else
        {
            setup = new CandidateSetup { Parameters = f.FixedParameters ?? new(), CancellationToken = deadline.Token };
            (model, entry.TrainSeconds) = Fit(f, c, setup, folds[0].Train);
            Options.CancellationToken.ThrowIfCancellationRequested();
            // The deadline's timer runs on the thread pool and can fire late when the pool is busy: the clock decides.
            if (entry.TrainSeconds > (budget * 0.9).TotalSeconds) throw new TimeoutException("finished after its deadline");
        }
        entry.Model = model;
        entry.Parameters = setup.Parameters;
        if (FindDeep(model) is { } deep)
        {
            entry.History = deep.History;
            entry.Device = deep.Device.ToString();
        }

        // Every fold's metrics (k-fold: the chosen configuration refitted on each fold), averaged.
        var perFold = new List<Dictionary<string, double>> { Metrics.Evaluate(_ml, model.Transform(folds[0].Valid), c.Task, c.LabelColumnName) };
        for (int k = 1; k < folds.Count; k++)
        {
            report("fold", $"{f.Name}: fold {k + 1}/{folds.Count}", null);
            var (m, _) = Fit(f, c, new CandidateSetup { Parameters = setup.Parameters, Epochs = setup.Epochs, CancellationToken = deadline.Token }, folds[k].Train);
            perFold.Add(Metrics.Evaluate(_ml, m.Transform(folds[k].Valid), c.Task, c.LabelColumnName));
            (FindDeep(m) as IDisposable)?.Dispose();
        }
        Options.CancellationToken.ThrowIfCancellationRequested();
        entry.Metrics = perFold[0].Keys.ToDictionary(key => key, key => perFold.Average(d => d[key]));
        entry.PeakMemoryBytes = memory.Peak;

        report("measuring", $"{f.Name}: measuring latency, throughput and size", null);
        Measurements.Measure(_ml, model, folds[0].Train.Schema, folds[0].Valid, c, Options.LatencySamples, entry);
    }

    // Random search with successive halving: every configuration trains a few epochs; the best 1/η go on with η× the
    // epochs, up to the family's full length. Trials are ranked by the trainer's own held-out metric.
    private (ITransformer, CandidateSetup, double) Search(CandidateFactory f, CandidateContext c, IDataView train, CancellationToken token,
        IProgress<EpochRecord> epochs, LeaderboardEntry entry, Reporter report, TimeSpan budget)
    {
        var o = Options;
        int eta = o.HalvingFactor;
        int maxEpochs = Math.Max(1, o.MaxEpochs ?? f.MaxEpochs);
        var configs = f.SearchSpace is { Knobs.Count: > 0 } space
            ? space.Configurations(o.Trials, new Random(o.Seed)).ToList()
            : [new HyperParameters()];
        int rungs = configs.Count == 1 ? 1 : (int)Math.Ceiling(Math.Log(configs.Count) / Math.Log(eta) - 1e-9) + 1;
        (ITransformer Model, CandidateSetup Setup, double Score, int Rung, double Seconds)? best = null;
        var alive = configs;
        for (int rung = 0; rung < rungs && alive.Count > 0; rung++)
        {
            int e = Math.Max(1, (int)Math.Round(maxEpochs / Math.Pow(eta, rungs - 1 - rung)));
            var scored = new List<(HyperParameters P, double Score)>();
            foreach (var p in alive)
            {
                if (token.IsCancellationRequested) break;
                report("trial", $"{f.Name}: rung {rung + 1}/{rungs}, {e} epochs, {p}", null);
                var setup = new CandidateSetup { Parameters = p, Epochs = e, CancellationToken = token, Progress = epochs };
                ITransformer model;
                double seconds;
                try
                {
                    (model, seconds) = Fit(f, c, setup, train);
                }
                catch (Exception ex) when (IsCancellation(ex) && !o.CancellationToken.IsCancellationRequested)
                {
                    break;   // the candidate's deadline, before this trial finished an epoch
                }
                var history = FindDeep(model)?.History;
                var (raw, score) = TrialScore(history);
                entry.Trials.Add(new TrialRecord(rung, history?.Epochs.Count ?? e, p.ToString(), raw, seconds));
                scored.Add((p, score));
                if (best is null || rung > best.Value.Rung || score > best.Value.Score)
                {
                    if (best is { } old) (FindDeep(old.Model) as IDisposable)?.Dispose();
                    best = (model, setup, score, rung, seconds);
                }
                else (FindDeep(model) as IDisposable)?.Dispose();
            }
            if (token.IsCancellationRequested) break;
            alive = scored.OrderByDescending(s => s.Score).Take((int)Math.Ceiling(scored.Count / (double)eta)).Select(s => s.P).ToList();
        }
        o.CancellationToken.ThrowIfCancellationRequested();
        if (best is not { } b)
            throw new TimeoutException($"no trial finished an epoch within the candidate's time budget of {budget.TotalSeconds:0.#} s");
        return (b.Model, b.Setup, b.Seconds);
    }

    // Higher is better: accuracy as is, RMSE negated; without held-out rows, the negated training loss.
    private static (double Raw, double Score) TrialScore(TrainingHistory? history)
    {
        var last = history?.Epochs.LastOrDefault();
        if (last is null) return (double.NaN, double.NegativeInfinity);
        if (last.ValidationMetric is double v) return (v, last.MetricName == "rmse" ? -v : v);
        return (last.TrainLoss, -last.TrainLoss);
    }

    private (ITransformer Model, double Seconds) Fit(CandidateFactory f, CandidateContext c, CandidateSetup setup, IDataView train)
    {
        var estimator = f.Build(c, setup);
        var watch = Stopwatch.StartNew();
        ITransformer model;
        // Deep trainers stop at the token themselves and keep the epochs they finished; ML.NET's trainers are stopped by
        // cancelling the candidate's context.
        using (f.Kind == CandidateKind.Classic ? setup.CancellationToken.Register(() => ContextCancellation.Cancel(c.Context)) : default)
            model = estimator.Fit(train);
        if (f.Kind == CandidateKind.Classic) setup.CancellationToken.ThrowIfCancellationRequested();
        // Binary candidates without probabilities (perceptrons, forests) get Platt scaling, so every row has a log-loss.
        if (c.Task == DeepTask.BinaryClassification && model.GetOutputSchema(train.Schema).GetColumnOrNull("Probability") is null)
        {
            var platt = _ml.BinaryClassification.Calibrators.Platt(c.LabelColumnName).Fit(model.Transform(train));
            model = new TransformerChain<ITransformer>(model, platt);
        }
        return (model, watch.Elapsed.TotalSeconds);
    }

    /// <summary>The deep transformer in <paramref name="model"/> (itself or inside a chain), or null.</summary>
    public static DeepTransformer? FindDeep(ITransformer? model) => model switch
    {
        DeepTransformer d => d,
        IEnumerable<ITransformer> chain => chain.Select(FindDeep).LastOrDefault(d => d != null),
        _ => null,
    };

    private static bool IsCancellation(Exception e) =>
        e is OperationCanceledException || e.InnerException is OperationCanceledException || e is AggregateException { InnerException: OperationCanceledException };

    private static string Describe(Exception e)
    {
        while (e is System.Reflection.TargetInvocationException or AggregateException && e.InnerException is { } inner) e = inner;
        return $"{e.GetType().Name}: {e.Message}";
    }

    private static long Count(IDataView data)
    {
        if (data.GetRowCount() is long n) return n;
        long count = 0;
        using var cursor = data.GetRowCursor([]);
        while (cursor.MoveNext()) count++;
        return count;
    }

    private void Report(string candidate, int index, int count, string stage, string message, Stopwatch clock, EpochRecord? epoch) =>
        Options.Progress?.Report(new ComparisonProgress(candidate, index, count, stage, message, clock.Elapsed, Options.TimeBudget) { Epoch = epoch });

    // Progress<T> posts to the thread pool; this reports on the training thread, in order.
    private sealed class CallbackProgress<T>(Action<T> action) : IProgress<T>
    {
        public void Report(T value) => action(value);
    }
}
