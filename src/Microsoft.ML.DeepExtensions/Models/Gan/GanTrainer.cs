using System.Diagnostics;
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

    /// <summary>Options of <see cref="GanTrainer"/>; the defaults follow DCGAN practice (Adam 2e-4, β1 = 0.5, batch 64).</summary>
    public sealed class Options
    {
        /// <summary>The feature column: a known-size vector of Single (for images: planar pixels, e.g. ExtractPixels). Default "Features".</summary>
        public string FeatureColumnName { get; set; } = ColumnNames.Features;

        /// <summary>A Key label column to condition on (conditional GAN); null (the default) trains an unconditional GAN.</summary>
        public string? LabelColumnName { get; set; }

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
        public GanLoss Loss { get; set; } = GanLoss.Standard;

        /// <summary>One-sided label smoothing: the discriminator's target for real rows is 1 − this (standard loss only).</summary>
        public double LabelSmoothing { get; set; } = 0.1;

        /// <summary>Discriminator steps per generator step (WGAN-GP usually takes 5).</summary>
        public int DiscriminatorSteps { get; set; } = 1;

        /// <summary>Weight of the gradient penalty (WGAN-GP).</summary>
        public double GradientPenaltyWeight { get; set; } = 10;

        /// <summary>Passes over the training data.</summary>
        public int Epochs { get; set; } = 20;

        /// <summary>Rows per mini-batch.</summary>
        public int BatchSize { get; set; } = 64;

        /// <summary>Adam's learning rate, for both networks.</summary>
        public double LearningRate { get; set; } = 2e-4;

        /// <summary>Adam's β1 (0.5 keeps adversarial training stable, after Radford et al.).</summary>
        public double Beta1 { get; set; } = 0.5;

        /// <summary>Adam's β2.</summary>
        public double Beta2 { get; set; } = 0.999;

        /// <summary>Seed for initialisation, noise and shuffling; null takes one from the <see cref="MLContext"/>.</summary>
        public int? Seed { get; set; }

        /// <summary>CPU threads torch may use during Fit (restored afterwards); null keeps torch's default.</summary>
        public int? NumberOfThreads { get; set; }

        /// <summary>Where to train; null uses <see cref="MLContext.GpuDeviceId"/> if set, else <see cref="DeepDevice.Auto"/>.</summary>
        [JsonIgnore]
        public DeepDevice? Device { get; set; }

        /// <summary>Training data up to this size (MB) is cached as tensors; larger data is streamed each epoch.</summary>
        public int CacheBudgetMegabytes { get; set; } = 2048;

        /// <summary>Print one line per epoch to the console.</summary>
        [JsonIgnore]
        public bool Verbose { get; set; }

        /// <summary>Receives a record after every epoch (<see cref="EpochRecord.Losses"/> holds the generator and discriminator losses).</summary>
        [JsonIgnore]
        public IProgress<EpochRecord>? Progress { get; set; }

        /// <summary>Cancels training between batches; after at least one epoch Fit returns the model trained so far.</summary>
        [JsonIgnore]
        public CancellationToken CancellationToken { get; set; }

        /// <summary>Checks option values; throws naming the option.</summary>
        public void Validate()
        {
            static void Check(bool ok, string option, object? value, string expected)
            {
                if (!ok) throw new ArgumentOutOfRangeException(option, value, $"Option {option} must be {expected}; got {value}.");
            }
            if (string.IsNullOrWhiteSpace(FeatureColumnName)) throw new ArgumentException("FeatureColumnName must name a column.", nameof(FeatureColumnName));
            if (LabelColumnName is not null && string.IsNullOrWhiteSpace(LabelColumnName))
                throw new ArgumentException("LabelColumnName must name a Key column, or be null for an unconditional GAN.", nameof(LabelColumnName));
            Check(LatentSize >= 1, nameof(LatentSize), LatentSize, "at least 1");
            Check(Epochs >= 1, nameof(Epochs), Epochs, "at least 1");
            Check(BatchSize >= 2, nameof(BatchSize), BatchSize, "at least 2 (batch norm needs two rows)");
            Check(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), LearningRate, "a positive number");
            Check(Beta1 is >= 0 and < 1, nameof(Beta1), Beta1, "in [0, 1)");
            Check(Beta2 is >= 0 and < 1, nameof(Beta2), Beta2, "in [0, 1)");
            Check(LabelSmoothing is >= 0 and < 0.5, nameof(LabelSmoothing), LabelSmoothing, "in [0, 0.5)");
            Check(DiscriminatorSteps >= 1, nameof(DiscriminatorSteps), DiscriminatorSteps, "at least 1");
            Check(GradientPenaltyWeight >= 0, nameof(GradientPenaltyWeight), GradientPenaltyWeight, "0 or more");
            Check(NumberOfThreads is null or >= 1, nameof(NumberOfThreads), NumberOfThreads, "at least 1 or null");
            Check(CacheBudgetMegabytes >= 0, nameof(CacheBudgetMegabytes), CacheBudgetMegabytes, "0 or more");
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
        DeepRuntime.EnsureNativeLibrary();
        int threads = torch.get_num_threads();
        if (TrainerOptions.NumberOfThreads is int n) torch.set_num_threads(n);
        try
        {
            return FitCore(input);
        }
        finally
        {
            if (TrainerOptions.NumberOfThreads is not null) torch.set_num_threads(threads);
        }
    }

    private GanTransformer FitCore(IDataView input)
    {
        var o = TrainerOptions;

        // 1. Schema: clear errors before anything is read.
        int featureSize = ColumnChecks.FeatureSize(input.Schema, o.FeatureColumnName);
        LabelInfo? label = null;
        if (o.LabelColumnName is string labelName)
        {
            var col = ColumnChecks.Find(input.Schema, labelName, "Label");
            if (col.Type is not KeyDataViewType)
                throw new ArgumentException($"Label column '{labelName}' of a conditional GAN must be a Key type (use mlContext.Transforms.Conversion.MapValueToKey(\"{labelName}\")); found {col.Type}.", labelName);
            label = ColumnChecks.Label(input.Schema, labelName, DeepTask.MulticlassClassification);
        }
        var spec = Spec(featureSize, label?.ClassCount ?? 0);
        if (spec.Image is null && FtTransformerTrainer.SlotNames(input.Schema[o.FeatureColumnName], featureSize) is { } names)
            spec.OneHotGroups = FtTransformerSpec.FromSlotNames(names).Where(t => t.Length > 1).ToArray();
        spec.Validate();

        int seed = o.Seed ?? _host.Rand.Next();
        var device = (o.Device ?? DeepDevice.FromContext(_context)).Resolve(_context.FallbackToCpu);
        using var ch = _host.Start("Training");
        ch.Info(MessageSensitivity.None, $"GanTrainer: {spec.Family}, {featureSize} features, {(label is null ? "unconditional" : label.ClassCount + " classes")}, {o.Loss}, device {device}, seed {seed}.");

        // 2. Data: one validating pass, cached as tensors when it fits the budget.
        using var train = TrainingData.Load(input, o.FeatureColumnName, featureSize, null, o.LabelColumnName, label, RowFilter.All,
            (long)o.CacheBudgetMegabytes * 1024 * 1024, device, o.CancellationToken, "training");
        if (train.Count < 2)
            throw new InvalidOperationException($"The training data has {train.Count} row(s) in feature column '{o.FeatureColumnName}'; a GAN needs at least 2.");

        // 3. Networks, seeded once per Fit; features scaled to the generator's output range.
        torch.manual_seed(seed);
        var network = new GanNetwork(spec);
        var history = new TrainingHistory();
        try
        {
            var (center, scale) = Scaling(train, spec.TanhOutput);
            foreach (var g in spec.OneHotGroups)
                for (int i = g.Start; i < g.Start + g.Length; i++) (center[i], scale[i]) = (0, 1); // softmax output: already in [0, 1]
            float[]? prior = label is null ? null : train.ClassCounts.Select(c => (float)(c / (double)train.Count)).ToArray();
            network.SetStatistics(center, scale, prior);
            network.to(device);
            var progress = new ProgressCallback(ch, o.Verbose, o.Progress, r =>
            {
                EpochCompleted?.Invoke(this, r);
                if (EpochImages is { } images && spec.Image is not null)
                {
                    network.eval();
                    images(this, new GanEpochImages(r.Epoch, network.ImageGrid(8, seed, device)));
                }
            });
            Train(network, train, o, seed, device, history, progress);
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

    /// <summary>The adversarial loop: per batch a discriminator step, and a generator step every <c>DiscriminatorSteps</c> batches.</summary>
    private static void Train(GanNetwork network, TrainingData train, Options o, int seed, Device device, TrainingHistory history, ProgressCallback progress)
    {
        using var optG = optim.Adam(network.Generator.parameters(), o.LearningRate, o.Beta1, o.Beta2);
        using var optD = optim.Adam(network.Discriminator.parameters(), o.LearningRate, o.Beta1, o.Beta2);
        var token = o.CancellationToken;
        bool wgan = o.Loss == GanLoss.WassersteinGradientPenalty;
        float realTarget = (float)(1 - o.LabelSmoothing);
        try
        {
            for (int epoch = 1; epoch <= o.Epochs; epoch++)
            {
                var watch = Stopwatch.StartNew();
                torch.manual_seed(EpochSeed(seed, epoch));
                network.train();
                double dSum = 0, gSum = 0;
                long dRows = 0, gRows = 0, batch = 0;
                try
                {
                    foreach (var (features, y) in train.Batches(o.BatchSize, EpochSeed(seed, -epoch), device, token))
                    {
                        using var scope = torch.NewDisposeScope();
                        scope.Attach(features, y);
                        long n = features.shape[0];
                        if (n < 2) continue; // batch norm cannot normalise a single row
                        var real = network.Scale(features);
                        var oneHot = network.OneHot(y);

                        // Discriminator: real rows up, generated rows down.
                        optD.zero_grad();
                        Tensor fake;
                        using (torch.no_grad()) fake = network.Generate(torch.randn(n, network.Spec.LatentSize, device: device), oneHot);
                        var dReal = network.Discriminate(real, oneHot);
                        var dFake = network.Discriminate(fake, oneHot);
                        var dLoss = wgan
                            ? dFake.mean() - dReal.mean() + o.GradientPenaltyWeight * GradientPenalty(network, real, fake, oneHot)
                            : nn.functional.binary_cross_entropy_with_logits(dReal, torch.full_like(dReal, realTarget))
                              + nn.functional.binary_cross_entropy_with_logits(dFake, torch.zeros_like(dFake));
                        dLoss.backward();
                        optD.step();
                        dSum += dLoss.item<float>() * n;
                        dRows += n;

                        // Generator: fool the discriminator (non-saturating loss, or raise the critic's score).
                        if (++batch % o.DiscriminatorSteps != 0) continue;
                        optG.zero_grad();
                        var score = network.Discriminate(network.Generate(torch.randn(n, network.Spec.LatentSize, device: device), oneHot), oneHot);
                        var gLoss = wgan ? -score.mean() : nn.functional.binary_cross_entropy_with_logits(score, torch.ones_like(score));
                        gLoss.backward();
                        optG.step();
                        gSum += gLoss.item<float>() * n;
                        gRows += n;
                    }
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested && history.Epochs.Count > 0)
                {
                    history.StopReason = StopReason.Cancelled;
                    break;
                }
                double d = dSum / Math.Max(1, dRows), g = gSum / Math.Max(1, gRows);
                var record = new EpochRecord(epoch, d + g, null, null, "", o.LearningRate, watch.Elapsed.TotalSeconds)
                {
                    TotalEpochs = o.Epochs,
                    Losses = new Dictionary<string, double> { ["generator"] = g, ["discriminator"] = d },
                };
                history.Epochs.Add(record);
                history.BestEpoch = epoch;
                progress.Report(record);
                if (token.IsCancellationRequested)
                {
                    history.StopReason = StopReason.Cancelled;
                    break;
                }
            }
        }
        finally
        {
            foreach (var p in network.parameters())
            {
                using var grad = p.grad;
                if (grad is not null) p.grad = null;
            }
        }
        progress.End(history);
    }

    /// <summary>WGAN-GP: mean of (‖∇D(x̂)‖ − 1)² on random points x̂ between real and generated rows.</summary>
    private static Tensor GradientPenalty(GanNetwork network, Tensor real, Tensor fake, Tensor? oneHot)
    {
        var eps = torch.rand(real.shape[0], 1, device: real.device);
        var mixed = (eps * real + (1 - eps) * fake).detach().requires_grad_(true);
        var score = network.Discriminate(mixed, oneHot);
        var grad = torch.autograd.grad([score.sum()], [mixed], retain_graph: true, create_graph: true)[0];
        return (grad.norm(1) - 1).square().mean();
    }

    /// <summary>A deterministic per-epoch seed (a negative epoch gives the shuffling stream).</summary>
    private static int EpochSeed(int seed, int epoch)
    {
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(long)epoch * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 31)) * 0xD6E8FEB86659FD93UL;
        return (int)((z ^ (z >> 32)) & 0x7FFFFFFF);
    }
}

/// <summary>A grid of generated images after an epoch (see <see cref="GanTrainer.EpochImages"/>).</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="Png">The grid as PNG bytes.</param>
public sealed record GanEpochImages(int Epoch, byte[] Png);
