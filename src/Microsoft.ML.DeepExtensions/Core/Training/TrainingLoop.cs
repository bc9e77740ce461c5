using System.Diagnostics;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Training;

/// <summary>
/// The one training loop every family uses (skorch's <c>fit_loop</c>): per epoch run the callbacks (schedules set the
/// learning rate), seed dropout and shuffling from (seed, epoch) — so a resumed run matches an uninterrupted one — step
/// through the batches (one dispose scope per batch; the stepper keeps its loss on the device), validate, record the
/// history and run the callbacks. Checkpoints, early stopping, schedules and progress are callbacks; a family's learning
/// rule is its <see cref="IStepper"/>.
/// </summary>
internal sealed class TrainingLoop
{
    public required string TrainerName { get; init; }
    public required nn.Module Module { get; init; }
    public required NetworkSpec Spec { get; init; }
    public required IStepper Stepper { get; init; }
    public required TrainingData Train { get; init; }
    public TrainingData? Validation { get; init; }
    /// <summary>Validation loss and metric of a data set; null when the family has no validation metric.</summary>
    public Func<TrainingData, (double? Loss, double? Metric)>? Evaluate { get; init; }
    public string MetricName { get; init; } = "";
    public required DeepTrainerOptions Options { get; init; }
    public required DeepTask Task { get; init; }
    public required Device Device { get; init; }
    public required int Seed { get; init; }
    public IChannel? Channel { get; init; }
    /// <summary>Raised with every epoch's record (the trainer's <c>EpochCompleted</c> event).</summary>
    public Action<EpochRecord>? EpochCompleted { get; init; }

    /// <summary>Resumes from <see cref="DeepTrainerOptions.ResumeFromCheckpoint"/> when set, then runs the remaining epochs.</summary>
    public TrainingHistory Run()
    {
        var o = Options;
        var history = new TrainingHistory();
        int firstEpoch = 1;
        if (o.ResumeFromCheckpoint is string resume)
        {
            firstEpoch = Checkpoint.Read(resume, Spec, Module, Stepper, out history) + 1;
            Channel?.Info(MessageSensitivity.None, $"Resumed from {resume} after epoch {firstEpoch - 1}.");
        }
        if (firstEpoch > o.Epochs) return history;

        // Built-in behaviour first, the user's callbacks next, progress last (its end line sees restored weights).
        var owned = new List<TrainingCallback>();
        if (o.LearningRateSchedule is { } schedule) owned.Add(schedule);
        if (o.EarlyStopping is { } es) owned.Add(new EarlyStoppingCallback(es));
        if (o.CheckpointDirectory is string dir) owned.Add(new CheckpointCallback(dir, o.CheckpointEveryEpochs, o.KeepCheckpoints));
        var callbacks = owned.Concat(o.Callbacks).Append(new ProgressCallback(Channel, o.Verbose, o.Progress, EpochCompleted)).ToList();
        var context = new TrainingContext(TrainerName, Task, Module, Spec, Stepper, history, o.Epochs, o.LearningRate,
            Validation is not null && Evaluate is not null, MetricName, o.CancellationToken);
        try
        {
            foreach (var cb in callbacks) cb.OnTrainBegin(context);
            Epochs(context, callbacks, firstEpoch);
            foreach (var cb in callbacks) cb.OnTrainEnd(context);
        }
        finally
        {
            foreach (var cb in owned) (cb as IDisposable)?.Dispose();
        }
        return history;
    }

    private void Epochs(TrainingContext context, List<TrainingCallback> callbacks, int firstEpoch)
    {
        var o = Options;
        var token = o.CancellationToken;
        var history = context.History;
        for (int epoch = firstEpoch; epoch <= o.Epochs; epoch++)
        {
            var watch = Stopwatch.StartNew();
            context.Epoch = epoch;
            context.Batch = 0;
            context.Rows = 0;
            context.LearningRate = o.LearningRate;
            foreach (var cb in callbacks) cb.OnEpochBegin(context);
            double lr = context.LearningRate;
            Stepper.BeginEpoch(epoch, lr);
            torch.manual_seed(EpochSeed(epoch, 1));
            Module.train();
            try
            {
                foreach (var (x, y) in Train.Batches(o.BatchSize, EpochSeed(epoch, 2), Device, token))
                {
                    long rows = x.shape[0];
                    using (var scope = torch.NewDisposeScope())
                    {
                        scope.Attach(x, y);
                        Stepper.Step(x, y);
                    }
                    context.Batch++;
                    context.Rows += rows;
                    foreach (var cb in callbacks) cb.OnBatchEnd(context);
                    if (context.StopRequested is not null) break;
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested && history.Epochs.Count > 0)
            {
                history.StopReason = StopReason.Cancelled;
                return;
            }

            var loss = Stepper.EndEpoch();
            // Validation is not interrupted: a cancellation that arrives now ends training after this epoch, keeping it.
            var (valLoss, valMetric) = Validation is not null && Evaluate is not null ? Evaluate(Validation) : (null, null);
            var record = new EpochRecord(epoch, loss.TrainLoss, valLoss, valMetric, MetricName, lr, watch.Elapsed.TotalSeconds)
                { TotalEpochs = o.Epochs, Losses = loss.Parts };
            history.Epochs.Add(record);
            history.BestEpoch = epoch;
            context.Record = record;
            foreach (var cb in callbacks) cb.OnEpochEnd(context);
            if (loss.Converged) context.Stop(StopReason.Converged);
            if (context.StopRequested is StopReason stop)
            {
                history.StopReason = stop;
                return;
            }
            if (token.IsCancellationRequested)
            {
                history.StopReason = StopReason.Cancelled;
                return;
            }
        }
    }

    /// <summary>A deterministic per-epoch seed (HashCode.Combine is randomised per process, so it is not used).</summary>
    private int EpochSeed(int epoch, int stream)
    {
        ulong z = (ulong)(uint)Seed * 0x9E3779B97F4A7C15UL ^ (ulong)epoch * 0xBF58476D1CE4E5B9UL ^ (ulong)stream * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 31)) * 0xD6E8FEB86659FD93UL;
        return (int)((z ^ (z >> 32)) & 0x7FFFFFFF);
    }

    /// <summary>Runs <paramref name="fit"/> with torch limited to <paramref name="threads"/> CPU threads (restored afterwards); null leaves torch's setting.</summary>
    public static T WithThreads<T>(int? threads, Func<T> fit)
    {
        DeepRuntime.EnsureNativeLibrary();
        if (threads is not int n) return fit();
        int before = torch.get_num_threads();
        torch.set_num_threads(n);
        try
        {
            return fit();
        }
        finally
        {
            torch.set_num_threads(before);
        }
    }
}

/// <summary>Validation of a <see cref="DeepNetwork"/>: mean loss, and accuracy (classification) or RMSE in label units (regression).</summary>
internal sealed class NetworkEvaluator(DeepNetwork network, LossFunction loss, DeepTask task, int batchSize, Device device)
{
    /// <summary>0, held for good: a Scalar made on the fly can be finalized while libtorch still reads it (TorchSharp 0.107).</summary>
    private static readonly Scalar Zero = 0.ToScalar();

    public static string MetricName(DeepTask task) => task == DeepTask.Regression ? "rmse" : "accuracy";

    /// <summary>Sums stay on the device; they are read once at the end.</summary>
    public (double? Loss, double? Metric) Evaluate(TrainingData data)
    {
        network.eval();
        using var _ = torch.no_grad();
        using var lossSum = zeros(1, ScalarType.Float64, device: device);
        using var metricSum = zeros(1, ScalarType.Float64, device: device);
        using var values = zeros(1, ScalarType.Float64, device: device);
        long rows = 0;
        foreach (var (x, y) in data.Batches(Math.Max(batchSize, 1024), null, device, CancellationToken.None))
        {
            using var scope = torch.NewDisposeScope();
            scope.Attach(x, y);
            var output = network.forward(x);
            long n = x.shape[0];
            rows += n;
            using var rowCount = ((double)n).ToScalar();   // held for the calls: TorchSharp's temporaries can be finalized mid-call
            if (task == DeepTask.Regression)
            {
                lossSum.add_(loss.Compute(output, network.ScaleTarget(y)).to_type(ScalarType.Float64), rowCount);
                var pred = network.Predict(x).reshape(-1);
                metricSum.add_((pred - y.reshape(-1)).square().sum().to_type(ScalarType.Float64));
                using var valueCount = ((double)y.numel()).ToScalar();
                values.add_(valueCount);
                continue;
            }
            lossSum.add_(loss.Compute(output, y).to_type(ScalarType.Float64), rowCount);
            if (y.dim() == 2)
            {
                // A key-vector label (one class per step): accuracy over the labelled steps.
                var predictedSteps = output.reshape(y.shape[0], y.shape[1], -1).argmax(2).to_type(ScalarType.Float32);
                var labelled = y.ne(FeatureReader.NoClass);
                metricSum.add_(predictedSteps.eq(y).logical_and(labelled).sum().to_type(ScalarType.Float64));
                values.add_(labelled.sum().to_type(ScalarType.Float64));
                continue;
            }
            var predicted = task == DeepTask.BinaryClassification ? output.reshape(-1).gt(Zero).to_type(ScalarType.Float32) : output.argmax(1).to_type(ScalarType.Float32);
            metricSum.add_(predicted.eq(y).sum().to_type(ScalarType.Float64));
            values.add_(rowCount);
        }
        double count = Math.Max(values.item<double>(), 1), metric = metricSum.item<double>();
        return (lossSum.item<double>() / Math.Max(rows, 1), task == DeepTask.Regression ? Math.Sqrt(metric / count) : metric / count);
    }
}
