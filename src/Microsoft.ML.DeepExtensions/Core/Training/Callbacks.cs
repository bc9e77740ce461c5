using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Training;

/// <summary>Stops when the watched validation metric has not improved for <c>Patience</c> epochs; restores the best weights.</summary>
internal sealed class EarlyStoppingCallback : ITrainingCallback, IDisposable
{
    private readonly EarlyStoppingOptions _options;
    private readonly bool _maximize;
    private readonly string _metric;
    private double _best;
    private int _bestEpoch;
    private int _wait;
    private Dictionary<string, Tensor>? _bestState;

    public EarlyStoppingCallback(EarlyStoppingOptions options, DeepTask task)
    {
        _options = options;
        _metric = options.Metric.Trim().ToLowerInvariant();
        string taskMetric = TrainingLoop.MetricName(task);
        if (_metric != "loss" && _metric != taskMetric)
            throw new ArgumentException($"EarlyStopping.Metric '{options.Metric}' is not available for {task}; use 'loss' or '{taskMetric}'.", "EarlyStopping");
        _maximize = _metric == "accuracy";
        _best = _maximize ? double.NegativeInfinity : double.PositiveInfinity;
    }

    public void OnEpochEnd(EpochContext ctx)
    {
        double? value = _metric == "loss" ? ctx.Record.ValidationLoss : ctx.Record.ValidationMetric;
        if (value is not double v)
            throw new InvalidOperationException("Early stopping needs validation data: set ValidationFraction > 0 or ValidationData.");
        bool improved = _maximize ? v > _best + _options.MinDelta : v < _best - _options.MinDelta;
        if (improved)
        {
            _best = v;
            _bestEpoch = ctx.Record.Epoch;
            _wait = 0;
            if (_options.RestoreBestWeights) Snapshot(ctx.Network);
        }
        else if (++_wait >= _options.Patience)
            ctx.Stop = StopReason.EarlyStopped;
    }

    public void OnTrainEnd(DeepNetwork network, TrainingHistory history)
    {
        if (_bestState is null || !_options.RestoreBestWeights || _bestEpoch == history.Epochs.LastOrDefault()?.Epoch) return;
        using (no_grad())
            foreach (var (name, t) in network.state_dict())
                t.copy_(_bestState[name]);
        history.BestEpoch = _bestEpoch;
    }

    private void Snapshot(DeepNetwork network)
    {
        Dispose();
        _bestState = network.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
    }

    public void Dispose()
    {
        if (_bestState is null) return;
        foreach (var t in _bestState.Values) t.Dispose();
        _bestState = null;
    }
}

/// <summary>Writes a checkpoint every N epochs, and at the last completed epoch when training is cancelled.</summary>
internal sealed class CheckpointCallback(int every, Action<EpochContext> write) : ITrainingCallback
{
    private EpochContext? _last;

    public void OnEpochEnd(EpochContext ctx)
    {
        _last = ctx;
        if (ctx.Record.Epoch % every == 0) write(ctx);
    }

    public void OnTrainEnd(DeepNetwork network, TrainingHistory history)
    {
        if (history.StopReason == StopReason.Cancelled && _last is not null && _last.Record.Epoch % every != 0)
            write(_last);
    }
}

/// <summary>Reports each epoch: <see cref="IProgress{T}"/>, the trainer's event, the ML.NET log and (verbose) the console.</summary>
internal sealed class ProgressCallback(IChannel? channel, bool verbose, IProgress<EpochRecord>? progress, Action<EpochRecord>? raise) : ITrainingCallback
{
    public void OnEpochEnd(EpochContext ctx) => Report(ctx.Record);

    public void OnTrainEnd(DeepNetwork network, TrainingHistory history) => End(history);

    /// <summary>Reports one epoch (also for families that run their own loop).</summary>
    public void Report(EpochRecord record)
    {
        var line = record.ToString();
        channel?.Info(MessageSensitivity.None, line);
        if (verbose) Console.WriteLine(line);
        progress?.Report(record);
        raise?.Invoke(record);
    }

    /// <summary>Reports the end of training.</summary>
    public void End(TrainingHistory history)
    {
        var line = $"Training ended: {history.StopReason}; weights of epoch {history.BestEpoch}; {history.TotalSeconds:F1}s.";
        channel?.Info(MessageSensitivity.None, line);
        if (verbose) Console.WriteLine(line);
    }
}
