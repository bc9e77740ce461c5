using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Training;

/// <summary>
/// A piece of training behaviour that runs inside the one training loop every trainer uses (skorch/Keras style):
/// override the hooks you need. Add yours to <see cref="DeepTrainerOptions.Callbacks"/>; early stopping, checkpoints,
/// learning-rate schedules and progress reporting are callbacks of this kind too.
/// </summary>
/// <remarks>
/// Hooks run in this order: <see cref="OnTrainBegin"/>; per epoch <see cref="OnEpochBegin"/>, <see cref="OnBatchEnd"/>
/// after every batch, <see cref="OnEpochEnd"/> after validation; finally <see cref="OnTrainEnd"/> (also after a
/// cancellation or a stop). Call <see cref="TrainingContext.Stop"/> to end training. A callback instance may be reused
/// across fits: <see cref="OnTrainBegin"/> is the place to reset its state.
/// </remarks>
public abstract class TrainingCallback
{
    /// <summary>Before the first epoch (after the data is read and the network built).</summary>
    public virtual void OnTrainBegin(TrainingContext context) { }

    /// <summary>Before each epoch; <see cref="TrainingContext.LearningRate"/> may be changed here.</summary>
    public virtual void OnEpochBegin(TrainingContext context) { }

    /// <summary>After each training batch (<see cref="TrainingContext.Batch"/>, <see cref="TrainingContext.Rows"/>). Keep it cheap.</summary>
    public virtual void OnBatchEnd(TrainingContext context) { }

    /// <summary>After each epoch and its validation; <see cref="TrainingContext.Record"/> holds the epoch's figures.</summary>
    public virtual void OnEpochEnd(TrainingContext context) { }

    /// <summary>When training ends, for whatever reason (<see cref="TrainingHistory.StopReason"/>).</summary>
    public virtual void OnTrainEnd(TrainingContext context) { }
}

/// <summary>What a <see cref="TrainingCallback"/> sees: the trainer, the epoch and batch, the history, the network, and a way to stop.</summary>
public sealed class TrainingContext
{
    internal TrainingContext(string trainerName, DeepTask task, nn.Module module, NetworkSpec spec, IStepper stepper, TrainingHistory history,
        int totalEpochs, double baseLearningRate, bool hasValidation, string metricName, CancellationToken token)
    {
        TrainerName = trainerName; Task = task; Module = module; Spec = spec; Stepper = stepper; History = history;
        TotalEpochs = totalEpochs; BaseLearningRate = baseLearningRate; LearningRate = baseLearningRate;
        HasValidation = hasValidation; MetricName = metricName; CancellationToken = token;
    }

    /// <summary>The trainer's name, e.g. "MlpTrainer".</summary>
    public string TrainerName { get; }

    /// <summary>The task being learnt.</summary>
    public DeepTask Task { get; }

    /// <summary>The network being trained (in training mode during an epoch). Read its <c>state_dict()</c>; do not dispose it.</summary>
    public nn.Module Module { get; }

    /// <summary>The network's spec.</summary>
    public NetworkSpec Spec { get; }

    /// <summary>The epochs completed so far (a resumed fit starts with the checkpoint's).</summary>
    public TrainingHistory History { get; }

    /// <summary>The current epoch, 1-based (during <see cref="TrainingCallback.OnTrainEnd"/>: the last one that ran).</summary>
    public int Epoch { get; internal set; }

    /// <summary>Epochs planned.</summary>
    public int TotalEpochs { get; }

    /// <summary>Batches completed in the current epoch.</summary>
    public int Batch { get; internal set; }

    /// <summary>Training rows seen in the current epoch.</summary>
    public long Rows { get; internal set; }

    /// <summary>The configured learning rate (<see cref="DeepTrainerOptions.LearningRate"/>).</summary>
    public double BaseLearningRate { get; }

    /// <summary>The learning rate of the current epoch; set it in <see cref="TrainingCallback.OnEpochBegin"/> to schedule it.</summary>
    public double LearningRate { get; set; }

    /// <summary>Whether the fit has validation data (so <see cref="EpochRecord.ValidationLoss"/> is filled in).</summary>
    public bool HasValidation { get; }

    /// <summary>The name of <see cref="EpochRecord.ValidationMetric"/>: "accuracy", "rmse", or "" when there is none.</summary>
    public string MetricName { get; }

    /// <summary>The epoch just completed (in <see cref="TrainingCallback.OnEpochEnd"/>); null before the first.</summary>
    public EpochRecord? Record { get; internal set; }

    /// <summary>The fit's cancellation token.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>Set by <see cref="Stop"/>.</summary>
    public StopReason? StopRequested { get; private set; }

    /// <summary>
    /// Ends training: from <see cref="TrainingCallback.OnEpochEnd"/> after this epoch; from
    /// <see cref="TrainingCallback.OnBatchEnd"/> after this batch (the epoch is then validated and recorded as usual).
    /// </summary>
    public void Stop(StopReason reason = StopReason.Stopped) => StopRequested ??= reason;

    internal IStepper Stepper { get; }
}

/// <summary>
/// Stops when the watched validation metric has not improved for <see cref="EarlyStoppingOptions.Patience"/> epochs and
/// (optionally) restores the best epoch's weights. <see cref="DeepTrainerOptions.EarlyStopping"/> adds one.
/// </summary>
public sealed class EarlyStoppingCallback(EarlyStoppingOptions options) : TrainingCallback, IDisposable
{
    private readonly EarlyStoppingOptions _options = options ?? throw new ArgumentNullException(nameof(options));
    private string _metric = "loss";
    private bool _maximize;
    private double _best;
    private int _bestEpoch;
    private int _wait;
    private Dictionary<string, Tensor>? _bestState;

    /// <summary>Checks the metric against the task and resets the state of an earlier fit.</summary>
    public override void OnTrainBegin(TrainingContext context)
    {
        _metric = _options.Metric.Trim().ToLowerInvariant();
        if (_metric != "loss" && _metric != context.MetricName)
            throw new ArgumentException($"EarlyStopping.Metric '{_options.Metric}' is not available for {context.Task}; use 'loss' or '{context.MetricName}'.", "EarlyStopping");
        if (!context.HasValidation)
            throw new InvalidOperationException("Early stopping needs validation data: set ValidationFraction > 0 (with enough rows) or ValidationData.");
        _maximize = _metric == "accuracy";
        _best = _maximize ? double.NegativeInfinity : double.PositiveInfinity;
        _bestEpoch = 0;
        _wait = 0;
        Dispose();
        // Resumed from a checkpoint: the weights it starts from are the first candidate for the best.
        if (context.History.Epochs.LastOrDefault() is { } last && Value(last) is double v)
        {
            (_best, _bestEpoch) = (v, last.Epoch);
            if (_options.RestoreBestWeights) Snapshot(context.Module);
        }
    }

    private double? Value(EpochRecord record) => _metric == "loss" ? record.ValidationLoss : record.ValidationMetric;

    /// <summary>Tracks the best epoch; stops after <see cref="EarlyStoppingOptions.Patience"/> epochs without improvement.</summary>
    public override void OnEpochEnd(TrainingContext context)
    {
        var record = context.Record!;
        if (Value(record) is not double v) return;
        bool improved = _maximize ? v > _best + _options.MinDelta : v < _best - _options.MinDelta;
        if (improved)
        {
            _best = v;
            _bestEpoch = record.Epoch;
            _wait = 0;
            if (_options.RestoreBestWeights) Snapshot(context.Module);
        }
        else if (++_wait >= _options.Patience)
            context.Stop(StopReason.EarlyStopped);
    }

    /// <summary>
    /// Restores the best epoch's weights when the module no longer holds them: a later epoch ran, or training was
    /// cancelled part-way through one (its batches changed the weights, but it was never validated).
    /// </summary>
    public override void OnTrainEnd(TrainingContext context)
    {
        var history = context.History;
        if (_bestState is not null && _options.RestoreBestWeights && _bestEpoch != context.Epoch)
        {
            using (no_grad())
                foreach (var (name, t) in context.Module.state_dict())
                    t.copy_(_bestState[name]);
            history.BestEpoch = _bestEpoch;
        }
        Dispose();
    }

    private void Snapshot(nn.Module module)
    {
        Dispose();
        _bestState = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
    }

    /// <summary>Releases the snapshot of the best weights.</summary>
    public void Dispose()
    {
        if (_bestState is null) return;
        foreach (var t in _bestState.Values) t.Dispose();
        _bestState = null;
    }
}

/// <summary>
/// Writes a checkpoint (weights, optimizer state, history) every <paramref name="everyEpochs"/> epochs into
/// <paramref name="directory"/>, and at the last completed epoch when training is cancelled or stopped;
/// <see cref="DeepTrainerOptions.ResumeFromCheckpoint"/> continues from one. <see cref="DeepTrainerOptions.CheckpointDirectory"/> adds one.
/// With <paramref name="keep"/> above 0, only that many of the newest checkpoints it wrote stay on disk.
/// </summary>
public sealed class CheckpointCallback(string directory, int everyEpochs = 1, int keep = 0) : TrainingCallback
{
    private readonly Queue<string> _written = new();
    private int _lastWritten;

    /// <summary>The folder checkpoints are written to.</summary>
    public string Directory { get; } = string.IsNullOrWhiteSpace(directory) ? throw new ArgumentException("The checkpoint directory must be named.", nameof(directory)) : directory;

    /// <summary>The path of the newest checkpoint written by this callback; null before the first.</summary>
    public string? LastPath { get; private set; }

    /// <inheritdoc />
    public override void OnTrainBegin(TrainingContext context) => _lastWritten = 0;

    /// <inheritdoc />
    public override void OnEpochEnd(TrainingContext context)
    {
        if (context.Record!.Epoch % Math.Max(1, everyEpochs) == 0) Write(context);
    }

    /// <inheritdoc />
    public override void OnTrainEnd(TrainingContext context)
    {
        if (context.History.StopReason is StopReason.Cancelled or StopReason.Stopped && context.Record is { } r && r.Epoch != _lastWritten)
            Write(context);
    }

    private void Write(TrainingContext context)
    {
        LastPath = Checkpoint.Write(Directory, context);
        _lastWritten = context.Record!.Epoch;
        _written.Enqueue(LastPath);
        while (keep > 0 && _written.Count > keep) File.Delete(_written.Dequeue());
    }
}

/// <summary>Reports each epoch: <see cref="IProgress{T}"/>, the trainer's event, the ML.NET log and (verbose) the console.</summary>
internal sealed class ProgressCallback(IChannel? channel, bool verbose, IProgress<EpochRecord>? progress, Action<EpochRecord>? raise) : TrainingCallback
{
    public override void OnEpochEnd(TrainingContext context)
    {
        var record = context.Record!;
        Write(record.ToString());
        progress?.Report(record);
        raise?.Invoke(record);
    }

    public override void OnTrainEnd(TrainingContext context)
    {
        var h = context.History;
        Write($"Training ended: {h.StopReason}; weights of epoch {h.BestEpoch}; {h.TotalSeconds:F1}s.");
    }

    private void Write(string line)
    {
        channel?.Info(MessageSensitivity.None, line);
        if (verbose) Console.WriteLine(line);
    }
}
