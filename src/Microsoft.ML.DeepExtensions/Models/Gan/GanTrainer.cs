using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Persistence;
using Microsoft.ML.DeepExtensions.Training;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Trains a generative adversarial network on a feature column — unsupervised, or conditional on a Key label column
/// (cGAN) so rows of a chosen class can be generated. Vectors get MLP networks; with <see cref="Options.ImageShape"/> the
/// networks are a DCGAN. The fitted <see cref="GanTransformer"/> adds the discriminator's <c>Score</c> (how real a row
/// looks; an anomaly score when negated) and generates synthetic rows with <see cref="GanTransformer.Generate(int, int, int?)"/>.
/// Create it with <c>mlContext.Deep().Gan(...)</c>.
/// </summary>
public sealed class GanTrainer : IEstimator<GanTransformer>
{
    private readonly MLContext _context;
    private readonly IHost _host;

    /// <summary>
    /// Options of <see cref="GanTrainer"/>; the defaults follow DCGAN practice (Adam 2e-4, β1 = 0.5, batch 64, 20 epochs).
    /// The shared options (epochs, batch size, learning rate and its schedule, optimizer, gradient clipping, seed, threads,
    /// device, cache, checkpoints and resume, callbacks, progress, cancellation) work as for every trainer and apply to
    /// both networks. Those that mean nothing for a GAN (a task, a supervised loss, class weights, validation data, early
    /// stopping, turning feature scaling off) are rejected by <see cref="Validate"/>.
    /// </summary>
    public sealed class Options : DeepTrainerOptions
    {
        /// <summary>Creates the options with the GAN's defaults.</summary>
        public Options()
        {
            LabelColumnName = null;
            Epochs = 20;
            BatchSize = 64;
            LearningRate = 2e-4;
            ValidationFraction = 0;
        }

        /// <summary>Train a DCGAN on images of this shape (the feature vector holds them channel-planar); null: MLP networks for vectors.</summary>
        public ImageShape? ImageShape { get; set; }

        /// <summary>Length of the generator's latent noise vector.</summary>
        public int LatentSize { get; set; } = 64;

        /// <summary>MLP generator hidden widths (vectors).</summary>
        public int[] GeneratorLayers { get; set; } = [128, 256];

        /// <summary>MLP discriminator hidden widths (vectors).</summary>
        public int[] DiscriminatorLayers { get; set; } = [256, 128];

        /// <summary>Dropout after each hidden layer of the MLP discriminator.</summary>
        public double DiscriminatorDropout { get; set; } = 0.2;

        /// <summary>DCGAN generator feature maps, smallest map first (each entry one 2× upsampling).</summary>
        public int[] GeneratorFilters { get; set; } = [128, 64];

        /// <summary>DCGAN discriminator filters (each entry one stride-2 convolution).</summary>
        public int[] DiscriminatorFilters { get; set; } = [64, 128];

        /// <summary>The adversarial objective: the standard (non-saturating) loss or WGAN-GP.</summary>
        public new GanLoss Loss { get; set; } = GanLoss.Standard;

        /// <summary>One-sided label smoothing: the discriminator's target for real rows is 1 − this (standard loss only).</summary>
        public double LabelSmoothing { get; set; } = 0.1;

        /// <summary>Discriminator steps per generator step (WGAN-GP usually takes 5).</summary>
        public int DiscriminatorSteps { get; set; } = 1;

        /// <summary>Weight of the gradient penalty (WGAN-GP).</summary>
        public double GradientPenaltyWeight { get; set; } = 10;

        /// <summary>β1 of Adam/AdamW (0.5 keeps adversarial training stable, after Radford et al.).</summary>
        public double Beta1 { get; set; } = 0.5;

        /// <summary>β2 of Adam/AdamW.</summary>
        public double Beta2 { get; set; } = 0.999;

        /// <summary>
        /// Null (the default) trains an unconditional GAN; the name of a Key label column trains a conditional one.
        /// </summary>
        protected override bool LabelRequired => false;

        /// <summary>Checks option values; throws naming the option.</summary>
        public override void Validate()
        {
            base.Validate();
            if (LabelColumnName is not null && string.IsNullOrWhiteSpace(LabelColumnName))
                throw new ArgumentException("LabelColumnName must name a Key column, or be null for an unconditional GAN.", nameof(LabelColumnName));
            Check(LatentSize >= 1, nameof(LatentSize), LatentSize, "at least 1");
            Check(BatchSize >= 2, nameof(BatchSize), BatchSize, "at least 2 (batch norm needs two rows)");
            Check(Beta1 is >= 0 and < 1, nameof(Beta1), Beta1, "in [0, 1)");
            Check(Beta2 is >= 0 and < 1, nameof(Beta2), Beta2, "in [0, 1)");
            Check(LabelSmoothing is >= 0 and < 0.5, nameof(LabelSmoothing), LabelSmoothing, "in [0, 0.5)");
            Check(DiscriminatorSteps >= 1, nameof(DiscriminatorSteps), DiscriminatorSteps, "at least 1");
            Check(GradientPenaltyWeight >= 0, nameof(GradientPenaltyWeight), GradientPenaltyWeight, "0 or more");
            static void Reject(bool meaningless, string option, string why)
            {
                if (meaningless) throw new ArgumentException($"Option {option} does not apply to a GAN: {why}.", option);
            }
            Reject(Task != DeepTask.Auto, nameof(Task), "it learns the feature distribution, not a task");
            Reject(base.Loss != DeepLoss.Auto, nameof(DeepTrainerOptions.Loss), "its objective is GanTrainer.Options.Loss (GanLoss)");
            Reject(ClassWeights is not null || BalanceClasses, ClassWeights is not null ? nameof(ClassWeights) : nameof(BalanceClasses), "the label only conditions the generator");
            Reject(ValidationFraction > 0 || ValidationData is not null, ValidationData is not null ? nameof(ValidationData) : nameof(ValidationFraction), "adversarial losses have no validation metric");
            Reject(EarlyStopping is not null, nameof(EarlyStopping), "there is no validation metric to watch; stop with a callback instead");
            Reject(!StandardizeFeatures, nameof(StandardizeFeatures), "features are always scaled to the generator's output range");
        }
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().Gan(...)</c>).</summary>
    public GanTrainer(MLContext context, Options options)
    {
        _context = context ?? throw new ArgumentNullException(nameof(context));
        TrainerOptions = options ?? throw new ArgumentNullException(nameof(options));
        DeepCatalog.Register(context);
        _host = ((IHostEnvironment)context).Register(nameof(GanTrainer));
    }

    /// <summary>The options (read at Fit time).</summary>
    public Options TrainerOptions { get; }

    /// <summary>Raised after every epoch.</summary>
    public event EventHandler<EpochRecord>? EpochCompleted;

    /// <summary>
    /// For image GANs: raised after every epoch with a PNG grid of samples drawn from the same noise each epoch (one row
    /// per class when conditional), to watch the images improve. Nothing is drawn unless a handler is attached.
    /// </summary>
    public event EventHandler<GanEpochImages>? EpochImages;

    /// <summary>The networks this trainer builds for <paramref name="featureSize"/> features and <paramref name="classCount"/> classes (0: unconditional).</summary>
    public GanSpec Spec(int featureSize, int classCount = 0)
    {
        var o = TrainerOptions;
        return new GanSpec
        {
            InputSize = featureSize, OutputSize = 1, LatentSize = o.LatentSize, ClassCount = classCount, Image = o.ImageShape,
            GeneratorLayers = o.GeneratorLayers, DiscriminatorLayers = o.DiscriminatorLayers, DiscriminatorDropout = o.DiscriminatorDropout,
            GeneratorFilters = o.GeneratorFilters, DiscriminatorFilters = o.DiscriminatorFilters, Loss = o.Loss,
            TanhOutput = o.ImageShape is not null,
        };
    }

    /// <summary>Checks the columns and returns the output shape: the input plus a Single <c>Score</c> column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var o = TrainerOptions;
        if (ColumnChecks.Find(inputSchema, o.FeatureColumnName) is not { } f)
            throw new ArgumentException($"Feature column '{o.FeatureColumnName}' was not found in the input schema.", o.FeatureColumnName);
        if (f.ItemType != NumberDataViewType.Single || f.Kind == SchemaShape.Column.VectorKind.VariableVector)
            throw new ArgumentException($"Feature column '{o.FeatureColumnName}' must be a known-size vector of Single; found {f.Kind} of {f.ItemType}.", o.FeatureColumnName);
        if (o.LabelColumnName is string label)
        {
            if (ColumnChecks.Find(inputSchema, label) is not { } l)
                throw new ArgumentException($"Label column '{label}' was not found in the input schema.", label);
            if (!l.IsKey || l.Kind != SchemaShape.Column.VectorKind.Scalar)
                throw new ArgumentException($"Label column '{label}' of a conditional GAN must be a scalar Key (use MapValueToKey); found {l.Kind} of {l.ItemType}.", label);
        }
        var cols = inputSchema.ToDictionary(c => c.Name);
        cols[ColumnNames.Score] = MlNetBridge.ShapeColumn(ColumnNames.Score, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false);
        return new SchemaShape(cols.Values);
    }

    /// <summary>Trains the generator and discriminator on <paramref name="input"/>.</summary>
    public GanTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        TrainerOptions.Validate();
        return TrainingLoop.WithThreads(TrainerOptions.NumberOfThreads, () => FitCore(input));
    }

    private GanTransformer FitCore(IDataView input)
    {
        var o = TrainerOptions;

        // 1. Schema: clear errors before anything is read.
        var features = VectorInput.For(ColumnChecks.Find(input.Schema, o.FeatureColumnName, "Feature").Type, o.FeatureColumnName);
        int featureSize = features.Size;
        LabelInfo? label = null;
        if (o.LabelColumnName is string labelName)
        {
            var col = ColumnChecks.Find(input.Schema, labelName, "Label");
            if (col.Type is not KeyDataViewType)
                throw new ArgumentException($"Label column '{labelName}' of a conditional GAN must be a Key type (use mlContext.Transforms.Conversion.MapValueToKey(\"{labelName}\")); found {col.Type}.", labelName);
            label = ColumnChecks.Label(input.Schema, labelName, DeepTask.MulticlassClassification);
        }
        var spec = Spec(featureSize, label?.ClassCount ?? 0);
        if (spec.Image is null && FeatureSlots.Names(input.Schema[o.FeatureColumnName], featureSize) is { } names)
            spec.OneHotGroups = FeatureSlots.Groups(names).Where(t => t.Length > 1).ToArray();
        spec.Validate();

        var (seed, device) = o.SeedAndDevice(_context, _host);
        using var ch = _host.Start("Training");
        ch.Info(MessageSensitivity.None, $"GanTrainer: {spec.Family}, {featureSize} features, {(label is null ? "unconditional" : label.ClassCount + " classes")}, {o.Loss}, device {device}, seed {seed}.");

        // 2. Data: one validating pass, cached as tensors when it fits the budget.
        using var train = TrainingData.Load(new TrainingRequest(input, o.FeatureColumnName, features)
        {
            LabelColumn = o.LabelColumnName, Label = label, BudgetBytes = (long)o.CacheBudgetMegabytes * 1024 * 1024, Device = device, Token = o.CancellationToken,
        });
        if (train.Count < 2)
            throw new InvalidOperationException($"The training data has {train.Count} row(s) in feature column '{o.FeatureColumnName}'; a GAN needs at least 2.");

        // 3. Networks, seeded once per Fit; features scaled to the generator's output range.
        torch.manual_seed(seed);
        var network = new GanNetwork(spec);
        TrainingHistory history;
        try
        {
            var (center, scale) = Scaling(train, spec.TanhOutput);
            foreach (var g in spec.OneHotGroups)
                for (int i = g.Start; i < g.Start + g.Length; i++) (center[i], scale[i]) = (0, 1); // softmax output: already in [0, 1]
            float[]? prior = label is null ? null : train.ClassCounts.Select(c => (float)(c / (double)train.Count)).ToArray();
            network.SetStatistics(center, scale, prior);
            network.to(device);
            using var stepper = new AdversarialStepper(network, o, device);
            history = new TrainingLoop
            {
                TrainerName = nameof(GanTrainer), Module = network, Spec = spec, Stepper = stepper, Train = train,
                Options = o, Task = DeepTask.Auto, Device = device, Seed = seed, Channel = ch,
                EpochCompleted = r =>
                {
                    EpochCompleted?.Invoke(this, r);
                    if (EpochImages is { } images && spec.Image is not null)
                    {
                        network.eval();
                        images(this, new GanEpochImages(r.Epoch, network.ImageGrid(8, seed, device)));
                    }
                },
            }.Run();
        }
        catch
        {
            network.Dispose();
            throw;
        }
        network.eval();

        var manifest = new ModelManifest
        {
            Trainer = nameof(GanTrainer),
            Spec = spec,
            Task = DeepTask.Regression, // one Single Score column: the discriminator's score
            FeatureColumnName = o.FeatureColumnName,
            LabelColumnName = o.LabelColumnName ?? "",
            ClassCount = label?.ClassCount ?? 0,
            LabelKeyValues = label?.KeyValues,
            HasProbability = false,
            History = history,
            TrainerOptions = JsonSerializer.SerializeToElement(o, ModelManifest.Json),
        };
        return new GanTransformer(_context, manifest, network, device);
    }

    /// <summary>
    /// Images (tanh output): all pixels share one range, mapped to [−1, 1]. Vectors (linear output): each feature is
    /// standardised on its own.
    /// </summary>
    private static (float[] Center, float[] Scale) Scaling(TrainingData train, bool tanh)
    {
        int d = train.FeatureSize;
        if (tanh)
        {
            float min = train.FeatureMin.Min(), max = train.FeatureMax.Max();
            float half = Math.Max((max - min) / 2, 1e-6f);
            return (Enumerable.Repeat((min + max) / 2, d).ToArray(), Enumerable.Repeat(1 / half, d).ToArray());
        }
        return (train.FeatureMean.ToArray(), train.FeatureStd.Select(s => s > 1e-8f ? 1 / s : 1f).ToArray());
    }
}

/// <summary>A grid of generated images after an epoch (see <see cref="GanTrainer.EpochImages"/>).</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="Png">The grid as PNG bytes.</param>
public sealed record GanEpochImages(int Epoch, byte[] Png);
