using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Persistence;
using Microsoft.ML.DeepExtensions.Training;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>What a family's <c>CreateSpec</c> builds a network for.</summary>
/// <param name="Input">How the feature column is read; its <see cref="FeatureInput.Size"/> is the network's input size.</param>
/// <param name="OutputSize">Network outputs per row (1, the class count, a vector label's size, classes × steps).</param>
/// <param name="Task">The task.</param>
public sealed record SpecRequest(FeatureInput Input, int OutputSize, DeepTask Task)
{
    /// <summary>The training data's feature column (for its annotations, e.g. slot names); null before training (<c>Spec(...)</c>).</summary>
    public DataViewSchema.Column? FeatureColumn { get; init; }

    /// <summary>The training data's label column (for its key values); null before training (<c>Spec(...)</c>).</summary>
    public DataViewSchema.Column? LabelColumn { get; init; }
}

/// <summary>
/// The estimator every deep trainer derives from. A family supplies only its network spec (and, if it does not learn by
/// gradient descent, its own step); schema checks, data reading, the training loop, validation, early stopping,
/// checkpoints, progress and the fitted <see cref="DeepTransformer"/> are shared.
/// </summary>
/// <typeparam name="TOptions">The family's options.</typeparam>
public abstract class DeepTrainerBase<TOptions> : IEstimator<DeepTransformer> where TOptions : DeepTrainerOptions
{
    private readonly IHost _host;

    /// <summary>Creates the trainer.</summary>
    protected DeepTrainerBase(MLContext context, TOptions options, string name)
    {
        Context = context ?? throw new ArgumentNullException(nameof(context));
        TrainerOptions = options ?? throw new ArgumentNullException(nameof(options));
        DeepCatalog.Register(context);
        _host = ((IHostEnvironment)context).Register(name);
        Name = name;
    }

    /// <summary>The ML.NET context.</summary>
    protected MLContext Context { get; }

    /// <summary>The options (read at Fit time).</summary>
    public TOptions TrainerOptions { get; }

    /// <summary>The trainer's name, e.g. "MlpTrainer".</summary>
    public string Name { get; }

    /// <summary>Raised after every epoch.</summary>
    public event EventHandler<EpochRecord>? EpochCompleted;

    /// <summary>Which tasks the family supports.</summary>
    protected virtual bool Supports(DeepTask task) => true;

    /// <summary>
    /// Whether <see cref="DeepTrainerOptions.StandardizeFeatures"/> standardises each feature on its own (tabular data)
    /// or all features with one mean and deviation (images, where pixels share a scale and shifts move them around).
    /// </summary>
    protected virtual bool StandardizePerFeature => true;

    /// <summary>
    /// Slots that share one mean and deviation repeat with this period: <paramref name="inputSize"/> gives every slot its
    /// own (tabular data), 1 pools all (images), F pools each feature over the steps of a T × F sequence.
    /// Default: from <see cref="StandardizePerFeature"/>.
    /// </summary>
    protected virtual int StatisticsPeriod(int inputSize) => StandardizePerFeature ? inputSize : 1;

    /// <summary>
    /// How the family reads a feature column of <paramref name="type"/> named <paramref name="column"/>; by default a Single
    /// or a known-size vector of Single (anything else is rejected naming the column and what to do). Families that read
    /// images, token ids or variable-length sequences return those inputs.
    /// </summary>
    protected virtual FeatureInput InputFor(DataViewType type, string column) => VectorInput.For(type, column);

    /// <summary>Whether the family can read a feature column of this shape (for <c>GetOutputSchema</c>); see <see cref="InputFor"/>.</summary>
    protected virtual bool Reads(SchemaShape.Column feature) => VectorInput.Reads(feature);

    /// <summary>What the family reads, for the message when <see cref="Reads"/> says no.</summary>
    protected virtual string Expects => "a known-size vector of Single (or a Single)";

    /// <summary>Whether binary models get a calibrated <c>Probability</c> column.</summary>
    protected virtual bool HasProbability => true;

    /// <summary>
    /// The family's network for <paramref name="request"/>: how the feature column is read (its
    /// <see cref="FeatureInput.Size"/> is the network's input size), the outputs per row, the task, and — at Fit — the
    /// feature column itself (for its annotations, e.g. slot names).
    /// </summary>
    protected abstract NetworkSpec CreateSpec(SpecRequest request);

    /// <summary>
    /// Steps of a variable-length key-vector label (one class per step): by default the token input's maximum length (one
    /// tag per token); a family whose output length differs from its input's (a sequence generator) says its own.
    /// </summary>
    protected virtual int? LabelSteps(FeatureInput input) => input.Steps;

    /// <summary>Called once after training, before the fitted model is made (e.g. to switch from training-time to scoring-time settings).</summary>
    protected virtual void Trained(NetworkSpec spec) { }

    /// <summary>
    /// Adapts <paramref name="spec"/> to the training data before the network is built, from each feature slot's minimum
    /// and maximum over the training rows (e.g. whether pixels are 0–1 or 0–255). By default nothing changes.
    /// </summary>
    protected virtual void AdaptToData(NetworkSpec spec, IReadOnlyList<float> featureMin, IReadOnlyList<float> featureMax) { }

    /// <summary>
    /// Sets the initial weights of a freshly built network body (after seeding; before training): a family with a
    /// pretrained backbone loads it here. By default the random initialisation stays.
    /// </summary>
    protected virtual void InitializeWeights(nn.Module<Tensor, Tensor> body, NetworkSpec spec) { }

    /// <summary>The learning rule; gradient descent unless a family overrides it.</summary>
    internal virtual IStepper CreateStepper(DeepNetwork network, LossFunction loss, DeepTask task, Device device) =>
        new GradientStepper(network, loss, TrainerOptions, task == DeepTask.Regression, device);

    /// <summary>The spec this trainer would build for a feature vector of <paramref name="inputSize"/> values (for <c>Summary()</c> before training).</summary>
    public NetworkSpec Spec(int inputSize, int outputSize) =>
        CreateSpec(new SpecRequest(InputOfSize(inputSize), outputSize, outputSize == 1 ? DeepTask.BinaryClassification : DeepTask.MulticlassClassification));

    /// <summary>The input <see cref="Spec"/> describes: by default what <see cref="InputFor"/> makes of a vector of <paramref name="inputSize"/> floats.</summary>
    protected virtual FeatureInput InputOfSize(int inputSize) =>
        InputFor(new VectorDataViewType(NumberDataViewType.Single, inputSize), TrainerOptions.FeatureColumnName);

    /// <summary>Trains on <paramref name="input"/>.</summary>
    public DeepTransformer Fit(IDataView input) => Fit(input, TrainerOptions.ValidationData);

    /// <summary>Trains on <paramref name="trainData"/>, validating on <paramref name="validationData"/> (null: use <c>ValidationFraction</c>).</summary>
    public DeepTransformer Fit(IDataView trainData, IDataView? validationData)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        TrainerOptions.Validate();
        return TrainingLoop.WithThreads(TrainerOptions.NumberOfThreads, () => FitCore(trainData, validationData));
    }

    /// <summary>Refuses a network whose training step would not fit <see cref="DeepTrainerOptions.MemoryLimitMegabytes"/>.</summary>
    private void CheckMemory(NetworkSpec spec, TOptions o)
    {
        var summary = spec.Summary();
        long need = summary.TrainingBytes(o.BatchSize);
        long limit = o.MemoryLimitMegabytes is int mb ? mb * 1048576L : (long)(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes * 0.8);
        if (need <= limit) return;
        var largest = summary.Layers.MaxBy(l => l.OutputShape.Aggregate(1L, (a, b) => a * b) + l.InternalActivations)!;
        throw new InsufficientMemoryException(
            $"{Name}: one training step of this network needs about {Gb(need)} (batch {o.BatchSize}, {summary.TotalParameters:N0} parameters; largest layer " +
            $"'{largest.Name}' with output ({string.Join(", ", largest.OutputShape)})), more than the {Gb(limit)} allowed " +
            (o.MemoryLimitMegabytes is null ? "(80 % of this process's memory)" : $"(MemoryLimitMegabytes {o.MemoryLimitMegabytes})") +
            ". Use fewer features or tokens, a smaller BatchSize or a narrower network.");

        static string Gb(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):N1} GB" : $"{bytes / 1048576.0:N0} MB";
    }

    private DeepTransformer FitCore(IDataView trainData, IDataView? validationData)
    {
        var o = TrainerOptions;

        // 1. Schema: clear errors before anything is read.
        var featureColumn = ColumnChecks.Find(trainData.Schema, o.FeatureColumnName, "Feature");
        var input = InputFor(featureColumn.Type, o.FeatureColumnName);
        int inputSize = input.Size;
        var label = ColumnChecks.Label(trainData.Schema, o.Label, o.Task, LabelSteps(input));
        if (!Supports(label.Task))
            throw new ArgumentException($"{Name} does not support {label.Task} (label column '{o.Label}' is {trainData.Schema[o.Label].Type}).", o.Label);
        if (validationData != null)
        {
            input.Check(ColumnChecks.Find(validationData.Schema, o.FeatureColumnName, "Feature").Type, o.FeatureColumnName);
            if (ColumnChecks.Label(validationData.Schema, o.Label, label.Task, LabelSteps(input)).Width != label.Width)
                throw new ArgumentException($"Label column '{o.Label}' has a different number of values in the validation data than the {label.Width} in the training data.", o.Label);
        }
        // Per row: K classes (× steps for one class per step), or the label's values (1, or a vector label's size).
        int outputs = label.Task == DeepTask.MulticlassClassification ? label.ClassCount * label.Width : label.Width;
        var spec = CreateSpec(new SpecRequest(input, outputs, label.Task) { FeatureColumn = featureColumn, LabelColumn = trainData.Schema[o.Label] });
        spec.Input = input;
        spec.Validate();
        CheckMemory(spec, o);

        var (seed, device) = o.SeedAndDevice(Context, _host);
        using var ch = _host.Start("Training");
        ch.Info(MessageSensitivity.None, $"{Name}: {label.Task}, {inputSize} features, {(outputs > 1 ? outputs + " classes" : "1 output")}, device {device}, seed {seed}.");

        // 2. Data: one validating pass; cached as tensors when it fits the budget.
        long budget = (long)o.CacheBudgetMegabytes * 1024 * 1024;
        bool split = validationData is null && o.ValidationFraction > 0;
        var request = new TrainingRequest(trainData, o.FeatureColumnName, input)
        {
            LabelColumn = o.Label, Label = label, BudgetBytes = budget, Device = device, Token = o.CancellationToken,
            Filter = split ? RowFilter.Train(seed, o.ValidationFraction) : RowFilter.All,
        };
        using var train = TrainingData.Load(request);
        var valid = validationData is not null ? TrainingData.Load(request with { Data = validationData, Filter = RowFilter.All, Role = "validation" })
            : split ? TrainingData.Load(request with { Filter = RowFilter.HeldOut(seed, o.ValidationFraction), Role = "validation", AllowEmpty = true })
            : null;
        if (valid is { Count: 0 })
        {
            ch.Warning(MessageSensitivity.None, $"ValidationFraction {o.ValidationFraction} of {train.Count} rows holds out no row; training without validation.");
            valid.Dispose();
            valid = null;
        }
        using var validation = valid;
        if (label.Task != DeepTask.Regression && train.ClassCounts.Count(c => c > 0) < 2)
            throw new InvalidOperationException(
                $"Label column '{o.Label}' has only one class in the training data ({string.Join(", ", train.ClassCounts.Select((c, i) => $"class {i}: {c} rows"))}); a classifier needs at least two.");
        ch.Info(MessageSensitivity.None, $"{train.Count} training rows ({(train.IsCached ? "cached as tensors" : "streamed")}), {valid?.Count ?? 0} validation rows.");

        // 3. Network, seeded once per Fit.
        AdaptToData(spec, train.FeatureMin, train.FeatureMax);
        torch.manual_seed(seed);
        var network = new DeepNetwork(spec);
        TrainingHistory history;
        try
        {
            InitializeWeights(network.Body, spec);
            // Token ids are never standardised; a variable-length sequence's statistics are final (per step feature over real steps).
            var (mean, std) = !o.StandardizeFeatures || !input.Standardized || spec.NormalizesInput ? (new float[inputSize], Enumerable.Repeat(1f, inputSize).ToArray())
                : input.StatisticsFinal ? (train.FeatureMean, train.FeatureStd)
                : train.PooledStatistics(StatisticsPeriod(inputSize));
            network.SetStatistics(mean, std,
                label.Task == DeepTask.Regression ? train.TargetMean : 0,
                label.Task == DeepTask.Regression ? train.TargetStd : 1);
            network.to(device);

            using var loss = new LossFunction(label.Task, o.Loss, ClassWeights(o, label, train), device);
            using var stepper = CreateStepper(network, loss, label.Task, device);
            var evaluator = new NetworkEvaluator(network, loss, label.Task, o.BatchSize, device);
            history = new TrainingLoop
            {
                TrainerName = Name, Module = network, Spec = spec, Stepper = stepper, Train = train, Validation = valid,
                Evaluate = evaluator.Evaluate, MetricName = NetworkEvaluator.MetricName(label.Task),
                Options = o, Task = label.Task, Device = device, Seed = seed, Channel = ch, EpochCompleted = r => EpochCompleted?.Invoke(this, r),
            }.Run();
        }
        catch
        {
            network.Dispose();
            throw;
        }
        network.eval();
        Trained(spec);

        var manifest = new ModelManifest
        {
            Trainer = Name,
            Spec = spec,
            Task = label.Task,
            FeatureColumnName = o.FeatureColumnName,
            LabelColumnName = o.Label,
            ClassCount = label.ClassCount,
            LabelKeyValues = label.KeyValues,
            LabelWidth = label.Width,
            HasProbability = HasProbability,
            History = history,
            TrainerOptions = JsonSerializer.SerializeToElement(o, o.GetType(), ModelManifest.Json),
        };
        return new DeepTransformer(manifest, network, device);
    }

    private static float[]? ClassWeights(DeepTrainerOptions o, LabelInfo label, TrainingData train)
    {
        if (label.Task == DeepTask.Regression) return null;
        if (o.ClassWeights is { } w)
        {
            if (w.Length != label.ClassCount || w.Any(x => !(x >= 0) || !float.IsFinite(x)))
                throw new ArgumentException($"ClassWeights must have {label.ClassCount} non-negative values (one per class of label column '{o.Label}'); got {w.Length}.", nameof(o.ClassWeights));
            return w;
        }
        if (!o.BalanceClasses) return null;
        long total = train.ClassCounts.Sum();
        return train.ClassCounts.Select(c => c == 0 ? 0f : (float)(total / (double)(label.ClassCount * c))).ToArray();
    }

    /// <summary>Checks the input columns and returns the output schema shape (so <c>EstimatorChain.Fit</c> validates).</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var o = TrainerOptions;
        ColumnChecks.CheckShape(inputSchema, o.FeatureColumnName, o.Label, Reads, Expects);
        var label = ColumnChecks.Find(inputSchema, o.Label)!.Value;
        var task = o.Task != DeepTask.Auto ? o.Task
            : label.IsKey ? DeepTask.MulticlassClassification
            : label.ItemType == BooleanDataViewType.Instance ? DeepTask.BinaryClassification : DeepTask.Regression;
        var cols = inputSchema.ToDictionary(c => c.Name);
        void Add(string name, SchemaShape.Column.VectorKind kind, DataViewType type, bool isKey, SchemaShape? ann = null) =>
            cols[name] = MlNetBridge.ShapeColumn(name, kind, type, isKey, ann);
        var scalar = SchemaShape.Column.VectorKind.Scalar;
        switch (task)
        {
            case DeepTask.BinaryClassification:
                Add(ColumnNames.Score, scalar, NumberDataViewType.Single, false);
                if (HasProbability) Add(ColumnNames.Probability, scalar, NumberDataViewType.Single, false);
                Add(ColumnNames.PredictedLabel, scalar, BooleanDataViewType.Instance, false);
                break;
            case DeepTask.MulticlassClassification:
                // A key-vector label (one class per step) gets a per-step PredictedLabel vector.
                Add(ColumnNames.Score, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
                Add(ColumnNames.PredictedLabel, label.Kind == SchemaShape.Column.VectorKind.Scalar ? scalar : SchemaShape.Column.VectorKind.Vector,
                    NumberDataViewType.UInt32, true, label.Annotations);
                break;
            default:
                // A vector label (multi-output regression, one value per step) gets a vector Score.
                Add(ColumnNames.Score, label.Kind == SchemaShape.Column.VectorKind.Vector ? SchemaShape.Column.VectorKind.Vector : scalar, NumberDataViewType.Single, false);
                break;
        }
        return new SchemaShape(cols.Values);
    }
}
