using System.Text.Json.Serialization;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Options shared by every deep trainer. Each trainer has a nested <c>Options</c> class deriving from this one, with
/// defaults that work for its family. The serialisable part is stored in the saved model; the runtime-only members
/// (<see cref="ValidationData"/>, <see cref="Progress"/>, <see cref="CancellationToken"/>) are not.
/// </summary>
public abstract class DeepTrainerOptions
{
    /// <summary>
    /// The label column: Boolean (binary), Key (multiclass) or Single/Double (regression). Default "Label". Families that
    /// can learn without one (a GAN) accept null.
    /// </summary>
    public string? LabelColumnName { get; set; } = ColumnNames.Label;

    /// <summary>Whether the family needs <see cref="LabelColumnName"/> (supervised); true unless a family says otherwise.</summary>
    protected virtual bool LabelRequired => true;

    /// <summary>The label column of a supervised family (checked by <see cref="Validate"/>).</summary>
    internal string Label => LabelColumnName ?? throw new ArgumentException("LabelColumnName must name a column.", nameof(LabelColumnName));

    /// <summary>The feature column: a known-size vector (dense or sparse) of Single. Default "Features".</summary>
    public string FeatureColumnName { get; set; } = ColumnNames.Features;

    /// <summary>The task; <see cref="DeepTask.Auto"/> infers it from the label column's type.</summary>
    public DeepTask Task { get; set; } = DeepTask.Auto;

    /// <summary>Passes over the training data.</summary>
    public int Epochs { get; set; } = 10;

    /// <summary>Rows per mini-batch.</summary>
    public int BatchSize { get; set; } = 128;

    /// <summary>The optimizer's (initial) learning rate.</summary>
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>The optimizer.</summary>
    public DeepOptimizer Optimizer { get; set; } = DeepOptimizer.Adam;

    /// <summary>Momentum for <see cref="DeepOptimizer.Sgd"/> and <see cref="DeepOptimizer.RmsProp"/>.</summary>
    public double Momentum { get; set; } = 0.9;

    /// <summary>L2 weight decay (decoupled for <see cref="DeepOptimizer.AdamW"/>).</summary>
    public double WeightDecay { get; set; }

    /// <summary>How the learning rate changes per epoch; null keeps it constant.</summary>
    public LearningRateSchedule? LearningRateSchedule { get; set; }

    /// <summary>Clip the global gradient norm to this value; null disables clipping.</summary>
    public double? GradientClipNorm { get; set; }

    /// <summary>The loss; <see cref="DeepLoss.Auto"/> picks the task's standard loss.</summary>
    public DeepLoss Loss { get; set; } = DeepLoss.Auto;

    /// <summary>Per-class loss weights (index = class index, for binary: [negative, positive]); null for none.</summary>
    public float[]? ClassWeights { get; set; }

    /// <summary>Weight classes by inverse frequency (ignored when <see cref="ClassWeights"/> is set).</summary>
    public bool BalanceClasses { get; set; }

    /// <summary>
    /// Fraction of the training rows held out (seeded) for validation metrics, early stopping and plateau schedules;
    /// 0 disables it. Ignored when <see cref="ValidationData"/> is given.
    /// </summary>
    public double ValidationFraction { get; set; } = 0.1;

    /// <summary>Explicit validation data (same schema as the training data); overrides <see cref="ValidationFraction"/>.</summary>
    [JsonIgnore]
    public IDataView? ValidationData { get; set; }

    /// <summary>Stop when a validation metric stops improving and restore the best weights; null trains all epochs.</summary>
    public EarlyStoppingOptions? EarlyStopping { get; set; }

    /// <summary>
    /// Seed for weight initialisation, dropout and shuffling. Same seed, data and thread count give identical weights on CPU.
    /// Null takes a seed from the <see cref="MLContext"/> (deterministic when it was created with a seed).
    /// </summary>
    public int? Seed { get; set; }

    /// <summary>
    /// CPU threads torch may use while this trainer fits (torch's setting is process-wide: it is restored after Fit);
    /// null keeps torch's default (one per core). Results are bit-identical for a given seed and thread count.
    /// </summary>
    public int? NumberOfThreads { get; set; }

    /// <summary>Where to train; null uses <see cref="MLContext.GpuDeviceId"/> if set, else <see cref="DeepDevice.Auto"/>.</summary>
    [JsonIgnore]
    public DeepDevice? Device { get; set; }

    /// <summary>Standardise each feature to zero mean and unit variance (statistics from the training data, stored in the model).</summary>
    public bool StandardizeFeatures { get; set; } = true;

    /// <summary>Training data up to this size (MB) is cached as tensors; larger data is streamed from the cursor each epoch.</summary>
    public int CacheBudgetMegabytes { get; set; } = 2048;

    /// <summary>
    /// The most memory (MB) one training step may take by the network's estimate (<see cref="Network.NetworkSummary.TrainingBytes"/>);
    /// a larger network is refused with an <see cref="InsufficientMemoryException"/> before anything is allocated, instead
    /// of libtorch aborting the process. Null (default): 80 % of the memory this process may use (the machine's, or the
    /// container's limit).
    /// </summary>
    public int? MemoryLimitMegabytes { get; set; }

    /// <summary>Folder for checkpoints; null disables checkpointing.</summary>
    [JsonIgnore]
    public string? CheckpointDirectory { get; set; }

    /// <summary>Write a checkpoint every this many epochs (when <see cref="CheckpointDirectory"/> is set).</summary>
    public int CheckpointEveryEpochs { get; set; } = 1;

    /// <summary>How many of the newest checkpoints this fit keeps (older ones it wrote are deleted); 0 (default) keeps all.</summary>
    public int KeepCheckpoints { get; set; }

    /// <summary>A checkpoint file to resume from: training continues after the epoch it recorded.</summary>
    [JsonIgnore]
    public string? ResumeFromCheckpoint { get; set; }

    /// <summary>Print one line per epoch to the console (Keras style). Progress is also logged to <see cref="MLContext.Log"/>.</summary>
    [JsonIgnore]
    public bool Verbose { get; set; }

    /// <summary>Receives a record after every epoch.</summary>
    [JsonIgnore]
    public IProgress<EpochRecord>? Progress { get; set; }

    /// <summary>
    /// Cancels training between batches. When at least one epoch has completed, Fit returns the model as trained so far
    /// (with <see cref="TrainingHistory.StopReason"/> = <see cref="StopReason.Cancelled"/>, and a checkpoint when checkpointing is on);
    /// otherwise it throws <see cref="OperationCanceledException"/>.
    /// </summary>
    [JsonIgnore]
    public CancellationToken CancellationToken { get; set; }

    /// <summary>
    /// Your own <see cref="TrainingCallback"/>s (loggers, stopping rules, metrics), run by the training loop after the
    /// built-in ones (schedule, early stopping, checkpoints) and before progress reporting, in list order.
    /// </summary>
    [JsonIgnore]
    public IList<TrainingCallback> Callbacks { get; set; } = new List<TrainingCallback>();

    /// <summary>The fit's seed (<see cref="Seed"/>, else one from the context) and device (<see cref="Device"/>, else the context's).</summary>
    internal (int Seed, TorchSharp.torch.Device Device) SeedAndDevice(MLContext context, Microsoft.ML.Runtime.IHost host) =>
        (Seed ?? host.Rand.Next(), (Device ?? DeepDevice.FromContext(context)).Resolve(context.FallbackToCpu));

    /// <summary>Checks option values before training; throws <see cref="ArgumentOutOfRangeException"/> naming the option.</summary>
    public virtual void Validate()
    {
        Check(Epochs >= 1, nameof(Epochs), Epochs, "at least 1");
        Check(BatchSize >= 1, nameof(BatchSize), BatchSize, "at least 1");
        Check(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), LearningRate, "a positive number");
        Check(ValidationFraction >= 0 && ValidationFraction < 1, nameof(ValidationFraction), ValidationFraction, "in [0, 1)");
        Check(WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "0 or more");
        Check(GradientClipNorm is null or > 0, nameof(GradientClipNorm), GradientClipNorm, "positive or null");
        Check(CheckpointEveryEpochs >= 1, nameof(CheckpointEveryEpochs), CheckpointEveryEpochs, "at least 1");
        Check(NumberOfThreads is null or >= 1, nameof(NumberOfThreads), NumberOfThreads, "at least 1 or null");
        Check(CacheBudgetMegabytes >= 0, nameof(CacheBudgetMegabytes), CacheBudgetMegabytes, "0 or more");
        Check(KeepCheckpoints >= 0, nameof(KeepCheckpoints), KeepCheckpoints, "0 (keep all) or more");
        Check(MemoryLimitMegabytes is null or >= 1, nameof(MemoryLimitMegabytes), MemoryLimitMegabytes, "at least 1, or null");
        if (LabelRequired && string.IsNullOrWhiteSpace(LabelColumnName)) throw new ArgumentException("LabelColumnName must name a column.", nameof(LabelColumnName));
        if (string.IsNullOrWhiteSpace(FeatureColumnName)) throw new ArgumentException("FeatureColumnName must name a column.", nameof(FeatureColumnName));
        if (Callbacks is null || Callbacks.Any(c => c is null)) throw new ArgumentException("Callbacks must be a list without null entries.", nameof(Callbacks));
    }

    /// <summary>Throws an <see cref="ArgumentOutOfRangeException"/> naming the option when <paramref name="ok"/> is false.</summary>
    protected static void Check(bool ok, string option, object? value, string expected)
    {
        if (!ok) throw new ArgumentOutOfRangeException(option, value, $"Option {option} must be {expected}; got {value}.");
    }
}

/// <summary>Early stopping: watch a validation metric, stop after <see cref="Patience"/> epochs without improvement.</summary>
public sealed class EarlyStoppingOptions
{
    /// <summary>"loss" (validation loss, the default), "accuracy" (classification) or "rmse" (regression).</summary>
    public string Metric { get; set; } = "loss";

    /// <summary>Epochs without improvement before stopping.</summary>
    public int Patience { get; set; } = 5;

    /// <summary>The smallest change that counts as an improvement.</summary>
    public double MinDelta { get; set; }

    /// <summary>Restore the weights of the best epoch when training ends.</summary>
    public bool RestoreBestWeights { get; set; } = true;
}
