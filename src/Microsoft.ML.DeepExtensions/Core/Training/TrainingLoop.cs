using System.Diagnostics;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Training;

/// <summary>What a callback sees after an epoch.</summary>
internal sealed class EpochContext
{
    public required DeepNetwork Network { get; init; }
    public required TrainingHistory History { get; init; }
    public required EpochRecord Record { get; init; }
    public required IStepper Stepper { get; init; }
    /// <summary>Set by a callback to end training after this epoch.</summary>
    public StopReason? Stop { get; set; }
}

/// <summary>A small piece of training behaviour (skorch-style): early stopping, checkpoints, progress.</summary>
internal interface ITrainingCallback
{
    void OnEpochEnd(EpochContext context);
    void OnTrainEnd(DeepNetwork network, TrainingHistory history) { }
}

/// <summary>
/// The one training loop every family uses: per epoch set the learning rate, seed dropout and shuffling from
/// (seed, epoch) — so a resumed run matches an uninterrupted one — step through the batches (one dispose scope per
/// batch), validate, record history and run the callbacks.
/// </summary>
internal sealed class TrainingLoop
{
    public required DeepNetwork Network { get; init; }
    public required IStepper Stepper { get; init; }
    public required LossFunction Loss { get; init; }
    public required TrainingData Train { get; init; }
    public TrainingData? Validation { get; init; }
    public required DeepTrainerOptions Options { get; init; }
    public required DeepTask Task { get; init; }
    public required Device Device { get; init; }
    public required int Seed { get; init; }
    public required IReadOnlyList<ITrainingCallback> Callbacks { get; init; }

    /// <summary>Runs epochs <paramref name="firstEpoch"/>..Epochs (1-based) and returns the history.</summary>
    public TrainingHistory Run(TrainingHistory history, int firstEpoch)
    {
        var token = Options.CancellationToken;
        Options.LearningRateSchedule?.Reset();
        for (int epoch = firstEpoch; epoch <= Options.Epochs; epoch++)
        {
            var watch = Stopwatch.StartNew();
            double lr = Options.LearningRateSchedule?.Rate(Options.LearningRate, epoch - 1, Options.Epochs) ?? Options.LearningRate;
            Stepper.BeginEpoch(lr);
            torch.manual_seed(EpochSeed(epoch, 1));
            Network.train();
            double lossSum = 0;
            long rows = 0;
            try
            {
                foreach (var (x, y) in Train.Batches(Options.BatchSize, EpochSeed(epoch, 2), Device, token))
                {
                    using var scope = torch.NewDisposeScope();
                    scope.Attach(x, y);
                    lossSum += Stepper.Step(x, y);
                    rows += x.shape[0];
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested && history.Epochs.Count > 0)
            {
                history.StopReason = StopReason.Cancelled;
                foreach (var cb in Callbacks) cb.OnTrainEnd(Network, history);
                return history;
            }

            bool converged = Stepper.EndEpoch();
            // Validation is not interrupted: a cancellation that arrives now ends training after this epoch, keeping it.
            var (valLoss, valMetric) = Validation is null ? (null, null) : Evaluate(Validation, CancellationToken.None);
            Options.LearningRateSchedule?.Observe(valLoss);
            var record = new EpochRecord(epoch, lossSum / Math.Max(1, rows), valLoss, valMetric, MetricName(Task), lr, watch.Elapsed.TotalSeconds)
                { TotalEpochs = Options.Epochs };
            history.Epochs.Add(record);
            history.BestEpoch = epoch;
            var ctx = new EpochContext { Network = Network, History = history, Record = record, Stepper = Stepper };
            foreach (var cb in Callbacks) cb.OnEpochEnd(ctx);
            if (converged) ctx.Stop ??= StopReason.Converged;
            if (ctx.Stop is StopReason stop)
            {
                history.StopReason = stop;
                break;
            }
            if (token.IsCancellationRequested)
            {
                history.StopReason = StopReason.Cancelled;
                break;
            }
        }
        foreach (var cb in Callbacks) cb.OnTrainEnd(Network, history);
        return history;
    }

    /// <summary>A deterministic per-epoch seed (HashCode.Combine is randomised per process, so it is not used).</summary>
    private int EpochSeed(int epoch, int stream)
    {
        ulong z = (ulong)(uint)Seed * 0x9E3779B97F4A7C15UL ^ (ulong)epoch * 0xBF58476D1CE4E5B9UL ^ (ulong)stream * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 31)) * 0xD6E8FEB86659FD93UL;
        return (int)((z ^ (z >> 32)) & 0x7FFFFFFF);
    }

    internal static string MetricName(DeepTask task) => task == DeepTask.Regression ? "rmse" : "accuracy";

    /// <summary>Mean loss and accuracy (classification) or RMSE in label units (regression) on <paramref name="data"/>.</summary>
    public (double? Loss, double? Metric) Evaluate(TrainingData data, CancellationToken token)
    {
        Network.eval();
        using var _ = torch.no_grad();
        double lossSum = 0, metricSum = 0;
        long rows = 0, values = 0;
        foreach (var (x, y) in data.Batches(Math.Max(Options.BatchSize, 1024), null, Device, token))
        {
            using var scope = torch.NewDisposeScope();
            scope.Attach(x, y);
            var output = Network.forward(x);
            long n = x.shape[0];
            rows += n;
            if (Task == DeepTask.Regression)
            {
                lossSum += Loss.Compute(output, Network.ScaleTarget(y)).item<float>() * n;
                var pred = Network.Predict(x).reshape(-1);
                metricSum += (pred - y.reshape(-1)).square().sum().item<float>();
                values += y.numel();
            }
            else
            {
                lossSum += Loss.Compute(output, y).item<float>() * n;
                if (y.dim() == 2)
                {
                    // One class per step: accuracy over the labelled steps.
                    var predictedSteps = output.reshape(y.shape[0], y.shape[1], -1).argmax(2).to_type(ScalarType.Float32);
                    var labelled = y.ne(Data.FeatureReader.NoClass);
                    metricSum += predictedSteps.eq(y).logical_and(labelled).sum().item<long>();
                    values += labelled.sum().item<long>();
                    continue;
                }
                var predicted = Task == DeepTask.BinaryClassification ? (output.reshape(-1) > 0).to_type(ScalarType.Float32) : output.argmax(1).to_type(ScalarType.Float32);
                metricSum += predicted.eq(y).sum().item<long>();
                values += n;
            }
        }
        rows = Math.Max(rows, 1);
        return (lossSum / rows, Task == DeepTask.Regression ? Math.Sqrt(metricSum / Math.Max(values, 1)) : metricSum / Math.Max(values, 1));
    }
}
