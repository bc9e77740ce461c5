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
        var parts = folds.Select(k => (k.Train, k.Valid)).ToList();
        var context = Describe(folds[0].Train.Schema);

        // 2. The candidates: classic ones first (fast; the time they leave goes to the deep ones), cheap deep ones next.
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
        // Classic first, then the deep ones, each in registry order (the built-in ones from the cheapest), so the time a
        // candidate leaves when it finishes or converges goes to the ones after it.
        var order = registry.Candidates.ToList();
        planned = planned.OrderBy(f => f.Kind == CandidateKind.Deep ? 1 : 0).ThenBy(order.IndexOf).ToList();

        // 3. Each candidate within its share of the time left.
        var finished = new List<LeaderboardEntry>();
        // Child-process isolation: the folds are written once for the workers (deleted at the end).
        using var workers = o.Isolation == CandidateIsolation.ChildProcess ? new WorkerPool(_ml, o, parts) : null;
        for (int i = 0; i < planned.Count; i++)
        {
            var f = planned[i];
            var entry = new LeaderboardEntry { Name = f.Name, Kind = f.Kind };
            // The weighted ensemble, built at the end, keeps 5 % of the budget for its selection and measurements.
            var left = o.TimeBudget * (o.Ensemble ? 0.95 : 1) - clock.Elapsed;
            if (o.CancellationToken.IsCancellationRequested)
                (entry.Status, entry.Error) = (CandidateStatus.Skipped, "the run was cancelled before it started");
            else if (left <= TimeSpan.Zero)
                (entry.Status, entry.Error) = (CandidateStatus.Skipped, $"the time budget ({o.TimeBudget.TotalSeconds:F0} s) was spent before it started");
            else
            {
                // A classic trainer stopped early keeps nothing, so it may use more than an equal share of the time left
                // (up to twice, and at most half: they usually need far less, and one slow tree ensemble must not starve
                // the rest); a deep candidate keeps the epochs it finished, so the deep ones share what remains equally.
                var share = TimeSpan.FromTicks(left.Ticks / (planned.Count - i));
                var budget = f.Kind == CandidateKind.Classic && planned.Count - i > 1
                    ? TimeSpan.FromTicks(Math.Min(left.Ticks / 2, share.Ticks * 2))
                    : share;
                if (o.CandidateTimeBudget is { } cap && cap < budget) budget = cap;
                Report(f.Name, i, planned.Count, "started", $"{f.Name}: started (budget {budget.TotalSeconds:F0} s)", clock, null);
                var watch = Stopwatch.StartNew();
                int index = i;
                Reporter reporter = (stage, message, epoch) => Report(f.Name, index, planned.Count, stage, message, clock, epoch);
                if (workers is not null)
                    entry = workers.Run(f, entry, budget, reporter);
                else
                    Attempt(f, context, parts, entry, budget, reporter);
                entry.TotalSeconds = watch.Elapsed.TotalSeconds;
                Report(f.Name, i, planned.Count, entry.Status.ToString(),
                    $"{f.Name}: {entry.Status}" + (entry.Error is null ? $" in {entry.TotalSeconds:F1} s" : $": {entry.Error}"), clock, null);
            }
            finished.Add(entry);
        }

        // 4. The weighted ensemble of what finished (fold 1's models, on fold 1's validation rows).
        var completed = finished.Where(e => e.Status == CandidateStatus.Completed).ToList();
        if (o.Ensemble && completed.Count >= 2 && !o.CancellationToken.IsCancellationRequested)
        {
            Report(AutoML.Ensemble.Name, planned.Count, planned.Count + 1, "started", $"{AutoML.Ensemble.Name}: selecting over {completed.Count} candidates", clock, null);
            var watch = Stopwatch.StartNew();
            try
            {
                if (AutoML.Ensemble.Build(_ml, completed, folds[0].Valid, folds[0].Train.Schema, context.Task, context.LabelColumnName) is { } built)
                {
                    Measurements.Measure(_ml, built.Model, folds[0].Train.Schema, folds[0].Valid, context, o.LatencySamples, built.Entry, measureThroughput: false);
                    built.Entry.Status = CandidateStatus.Completed;
                    built.Entry.TotalSeconds += watch.Elapsed.TotalSeconds;   // its members' totals, and its own measurements
                    finished.Add(built.Entry);
                    Report(AutoML.Ensemble.Name, planned.Count, planned.Count + 1, "Completed", $"{AutoML.Ensemble.Name}: {built.Entry.Parameters}", clock, null);
                }
            }
            catch (Exception e)
            {
                finished.Add(new LeaderboardEntry { Name = AutoML.Ensemble.Name, Kind = CandidateKind.Ensemble, Status = CandidateStatus.Failed, Error = Describe(e) });
            }
        }

        // 5. Rank.
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
        var (perClass, confusion) = best?.Model is { } winner && context.Task != DeepTask.Regression
            ? Confusion(winner, folds[0].Valid, context)
            : ([], null);
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
            Ending = Ending(finished, clock.Elapsed),
            BestPerClass = perClass,
            BestConfusion = confusion,
        };
    }

    // The best model's confusion matrix (ML.NET's evaluator) and per-class precision and recall, with the classes' names.
    // (None when the evaluator cannot read the model's output: the leaderboard is kept either way.)
    private (IReadOnlyList<ClassMetrics>, long[][]?) Confusion(ITransformer model, IDataView valid, CandidateContext c)
    {
        try
        {
            return ConfusionCore(model.Transform(valid), c);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return ([], null);
        }
    }

    private (IReadOnlyList<ClassMetrics>, long[][]?) ConfusionCore(IDataView scored, CandidateContext c)
    {
        var matrix = c.Task == DeepTask.BinaryClassification
            ? (scored.Schema.GetColumnOrNull("Probability") is null ? _ml.BinaryClassification.EvaluateNonCalibrated(scored, c.LabelColumnName).ConfusionMatrix
                : _ml.BinaryClassification.Evaluate(scored, c.LabelColumnName).ConfusionMatrix)
            : _ml.MulticlassClassification.Evaluate(scored, c.LabelColumnName).ConfusionMatrix;
        var counts = matrix.Counts.Select(row => row.Select(x => (long)x).ToArray()).ToArray();
        string[] names = c.Task == DeepTask.BinaryClassification ? ["true", "false"] : KeyNames(scored.Schema[c.LabelColumnName], counts.Length);
        var perClass = Enumerable.Range(0, counts.Length).Select(i => new ClassMetrics(names[i], counts[i].Sum(), matrix.PerClassPrecision[i], matrix.PerClassRecall[i])).ToList();
        return (perClass, counts);
    }

    private static string[] KeyNames(DataViewSchema.Column label, int count)
    {
        var values = default(VBuffer<ReadOnlyMemory<char>>);
        if (label.HasKeyValues()) label.GetKeyValues(ref values);
        var names = values.DenseValues().Select(v => v.ToString()).ToArray();
        return names.Length == count ? names : Enumerable.Range(1, count).Select(i => $"class {i}").ToArray();
    }

    // Which of the three ways the run ended, in words, for the report.
    private string Ending(List<LeaderboardEntry> finished, TimeSpan elapsed)
    {
        if (Options.CancellationToken.IsCancellationRequested) return "cancelled";
        double share = elapsed / Options.TimeBudget;
        var deep = finished.Where(e => e.Kind == CandidateKind.Deep && e.Status == CandidateStatus.Completed && e.History is not null).ToList();
        var stopped = deep.Where(e => e.History!.StopReason == StopReason.Cancelled).Select(e => e.Name).ToList();
        var converged = deep.Where(e => e.History!.StopReason is StopReason.EarlyStopped or StopReason.Converged).Select(e => e.Name).ToList();
        string detail = (converged.Count > 0 ? $"converged (early stopping): {string.Join(", ", converged)}" : "")
            + (converged.Count > 0 && stopped.Count > 0 ? "; " : "")
            + (stopped.Count > 0 ? $"stopped by their time: {string.Join(", ", stopped)}" : "");
        return (share >= 0.9 ? $"budget spent ({share:P0})" : $"finished at {share:P0} of the budget") + (detail.Length > 0 ? $"; {detail}" : "");
    }

    private sealed record Fold(ITransformer? Featurizer, IDataView Train, IDataView Valid);

    private (IDataView, IDataView) Split(IDataView data)
    {
        var s = _ml.Data.TrainTestSplit(data, Options.ValidationFraction, seed: Options.Seed);
        return (s.TrainSet, s.TestSet);
    }

    // The featurized schema → task, sizes and inputs; clear errors before anything trains.
    internal CandidateContext Describe(DataViewSchema schema)
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
            MemoryLimitMegabytes = o.CandidateMemoryLimitMegabytes,
        };
    }

    internal delegate void Reporter(string stage, string message, EpochRecord? epoch);

    // One candidate in this process: trained, evaluated and measured into entry, its status and reason set either way;
    // its model is saved at modelPath when one is given (a worker's result), else to a temporary file for its size.
    internal void Attempt(CandidateFactory f, CandidateContext context, IReadOnlyList<(IDataView Train, IDataView Valid)> folds, LeaderboardEntry entry, TimeSpan budget, Reporter report,
        string? modelPath = null)
    {
        try
        {
            RunCandidate(f, context, folds, entry, budget, report, modelPath);
            entry.Status = CandidateStatus.Completed;
        }
        catch (Exception e) when (IsCancellation(e) && Options.CancellationToken.IsCancellationRequested)
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
    }

    private void RunCandidate(CandidateFactory f, CandidateContext shared, IReadOnlyList<(IDataView Train, IDataView Valid)> folds, LeaderboardEntry entry, TimeSpan budget, Reporter report,
        string? modelPath)
    {
        // A context of its own: a classic trainer is stopped at the deadline by cancelling it (evaluation uses the comparison's).
        var c = shared with { Context = new MLContext(shared.Seed) };
        using var memory = new PeakMemorySampler();
        // Training stops at 90 % of the budget: evaluation and measurements fit in the rest.
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Options.CancellationToken);
        deadline.CancelAfter(budget * 0.9);
        var started = Stopwatch.StartNew();
        // A deep candidate's deadline also leaves room for what follows training — scoring the validation split (metrics,
        // and the throughput of a slow model), up to 3 s of single rows, saving the model — so a slow scorer (a ResNet
        // at 8 ms a row) does not run past its budget: estimated after its first epoch (scoring a row taken as half a
        // training step), then timed on its first model (after one epoch: see Search).
        void ReserveScoringTime(double secondsPerRow)
        {
            double rows = Count(folds[0].Valid) * folds.Count + 20;   // every fold's validation rows and the latency warm-up
            var scoring = TimeSpan.FromSeconds(secondsPerRow * rows + Math.Min(3, 2 * secondsPerRow * Options.LatencySamples) + 3);
            var end = budget - scoring - started.Elapsed;
            if (end < budget * 0.9 - started.Elapsed) deadline.CancelAfter(end > TimeSpan.Zero ? end : TimeSpan.Zero);
        }
        bool estimated = false;
        var epochs = new CallbackProgress<EpochRecord>(r =>
        {
            if (!estimated) ReserveScoringTime(r.Seconds / Math.Max(Count(folds[0].Train), 1) / 2);
            estimated = true;
            report("epoch", $"{f.Name}: {r}", r);
        });
        void TimeScoring(ITransformer first)
        {
            try
            {
                var (rows, seconds) = Measurements.Score(first, _ml.Data.TakeRows(folds[0].Valid, 128));
                ReserveScoringTime(seconds / Math.Max(rows, 1));
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException) { }   // no Score column: the estimate stands
        }

        // Fold 1: the search (deep) or the one fit (classic).
        ITransformer model;
        CandidateSetup setup;
        if (f.Kind == CandidateKind.Deep)
            (model, setup, entry.TrainSeconds) = Search(f, c, folds[0].Train, deadline.Token, epochs, entry, report, budget, TimeScoring);
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

        // Every fold's metrics (k-fold: the chosen configuration refitted on each fold), averaged. Fold 1's validation
        // rows are scored once, cached: the metrics, the scores the ensemble averages and (for a slow model) the throughput.
        var watch = Stopwatch.StartNew();
        var scored = _ml.Data.Cache(model.Transform(folds[0].Valid));
        var perFold = new List<Dictionary<string, double>> { Metrics.Evaluate(_ml, scored, c.Task, c.LabelColumnName) };
        var pass = (Rows: Count(folds[0].Valid), watch.Elapsed.TotalSeconds);
        entry.ValidationScores = Ensemble.Scores(scored, c.Task);
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
        Measurements.Measure(_ml, model, folds[0].Train.Schema, folds[0].Valid, c, Options.LatencySamples, entry, pass, modelPath: modelPath);
    }

    // Random search with successive halving, warm-started: every configuration trains a few epochs; the best 1/η go on
    // from their checkpoints to η× the epochs, up to the family's full length. Trials are ranked by the trainer's own
    // held-out metric. Then, unless MaxEpochs caps the run, the winner trains on with early stopping until it converges
    // or the candidate's time ends: the budget buys epochs.
    private (ITransformer, CandidateSetup, double) Search(CandidateFactory f, CandidateContext c, IDataView train, CancellationToken token,
        IProgress<EpochRecord> epochs, LeaderboardEntry entry, Reporter report, TimeSpan budget, Action<ITransformer> firstModel)
    {
        var o = Options;
        int eta = o.HalvingFactor;
        int maxEpochs = Math.Max(1, o.MaxEpochs ?? f.MaxEpochs);
        var configs = f.SearchSpace is { Knobs.Count: > 0 } space
            ? space.Configurations(o.Trials, new Random(o.Seed)).ToList()
            : [new HyperParameters()];
        int rungs = configs.Count == 1 ? 1 : (int)Math.Ceiling(Math.Log(configs.Count) / Math.Log(eta) - 1e-9) + 1;
        string root = Path.Combine(Path.GetTempPath(), $"deepext-compare-{Environment.ProcessId}-{Guid.NewGuid():N}");
        var trials = configs.Select((p, i) => new Trial(p, Path.Combine(root, $"trial{i + 1}"))).ToList();
        Trial? best = null;
        try
        {
            var alive = trials;
            for (int rung = 0; rung < rungs && alive.Count > 0; rung++)
            {
                int e = Math.Max(1, (int)Math.Round(maxEpochs / Math.Pow(eta, rungs - 1 - rung)));
                var scored = new List<Trial>();
                foreach (var t in alive)
                {
                    if (token.IsCancellationRequested) break;
                    report("trial", $"{f.Name}: rung {rung + 1}/{rungs}, epochs {t.Epochs + 1}–{e}, {t.Parameters}", null);
                    // The first model times scoring for the deadline; a single configuration would give it only at its
                    // full length, so it stops after one epoch for that and then continues from its checkpoint.
                    bool split = best is null && configs.Count == 1 && e > 1;
                    if (split)
                    {
                        if (!Continue(f, c, t, 1, KeepBest, train, token, epochs)) break;
                        firstModel(t.Model!);
                    }
                    bool finished = Continue(f, c, t, e, KeepBest, train, token, epochs);
                    if (!finished && !split) break;
                    if (best is null && !split) firstModel(t.Model!);
                    entry.Trials.Add(new TrialRecord(rung, t.Epochs, t.Parameters.ToString(), t.Raw, t.Seconds));
                    t.Rung = rung;
                    scored.Add(t);
                    if (best is null || rung > best.Rung || t.Score > best.Score) best = t;
                    if (!finished) break;
                }
                foreach (var t in trials.Where(t => t != best)) t.Release();
                if (token.IsCancellationRequested) break;
                alive = scored.OrderByDescending(t => t.Score).Take((int)Math.Ceiling(scored.Count / (double)eta)).ToList();
            }
            o.CancellationToken.ThrowIfCancellationRequested();
            if (best?.Model is null)
                throw new TimeoutException($"no trial finished an epoch within the candidate's time budget of {budget.TotalSeconds:0.#} s");

            if (o.MaxEpochs is null && !token.IsCancellationRequested && FindDeep(best.Model)?.History.StopReason is StopReason.Completed)
            {
                report("trial", $"{f.Name}: the best configuration trains on from epoch {best.Epochs + 1} with early stopping, until it converges or its time ends", null);
                var patience = new EarlyStoppingOptions { Patience = 3, RestoreBestWeights = true };
                if (Continue(f, c, best, best.Epochs + 100 * maxEpochs, patience, train, token, epochs))
                    entry.Trials.Add(new TrialRecord(rungs, best.Epochs, best.Parameters.ToString(), best.Raw, best.Seconds));
            }
            o.CancellationToken.ThrowIfCancellationRequested();
            return (best.Model!, new CandidateSetup { Parameters = best.Parameters, Epochs = best.Epochs }, best.Seconds);
        }
        finally
        {
            foreach (var t in trials.Where(t => t != best)) t.Release();
            try { Directory.Delete(root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    // A rung never stops early, but a trial whose deadline cancels it part-way through an epoch keeps its best
    // validated epoch, not the weights of half an epoch (at the moment a pretrained backbone unfreezes, those can be
    // far worse than the epoch before).
    private static readonly EarlyStoppingOptions KeepBest = new() { Patience = int.MaxValue, RestoreBestWeights = true };

    /// <summary>
    /// Trains <paramref name="t"/> on to <paramref name="epochs"/> in total, from its last checkpoint; false when the
    /// deadline came before an epoch finished (the trial keeps what it had).
    /// </summary>
    private bool Continue(CandidateFactory f, CandidateContext c, Trial t, int epochs, EarlyStoppingOptions? earlyStopping, IDataView train,
        CancellationToken token, IProgress<EpochRecord> progress)
    {
        var setup = new CandidateSetup
        {
            Parameters = t.Parameters, Epochs = epochs, CancellationToken = token, Progress = progress, EarlyStopping = earlyStopping,
            CheckpointDirectory = t.Directory, ResumeFromCheckpoint = t.LastCheckpoint(),
        };
        ITransformer model;
        double seconds;
        try
        {
            (model, seconds) = Fit(f, c, setup, train);
        }
        catch (Exception ex) when (IsCancellation(ex) && !Options.CancellationToken.IsCancellationRequested)
        {
            return false;
        }
        var history = FindDeep(model)?.History;
        if (t.Model is not null && !ReferenceEquals(t.Model, model)) t.Release();
        (t.Model, t.Seconds) = (model, t.Seconds + seconds);
        t.Epochs = history?.Epochs.Count ?? epochs;
        (t.Raw, t.Score) = TrialScore(history);
        return true;
    }

    /// <summary>One configuration of a search: its checkpoints, its model so far, its score.</summary>
    private sealed class Trial(HyperParameters parameters, string directory)
    {
        public HyperParameters Parameters { get; } = parameters;
        public string Directory { get; } = directory;
        public ITransformer? Model { get; set; }
        public int Epochs { get; set; }
        public int Rung { get; set; } = -1;
        public double Seconds { get; set; }
        public double Raw { get; set; } = double.NaN;
        public double Score { get; set; } = double.NegativeInfinity;

        public string? LastCheckpoint() =>
            System.IO.Directory.Exists(Directory) ? System.IO.Directory.GetFiles(Directory, "*.deepckpt").Order(StringComparer.Ordinal).LastOrDefault() : null;

        /// <summary>Frees the trial's network (it can be continued from its checkpoint).</summary>
        public void Release()
        {
            (FindDeep(Model) as IDisposable)?.Dispose();
            Model = null;
        }
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
