using System.Diagnostics;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// The measured path: the Fashion-MNIST IDataView through a trivial ML.NET transform into <c>mlContext.Deep().Mlp</c>,
/// fitted as an ordinary estimator chain and evaluated with ML.NET's multiclass evaluator.
/// </summary>
internal static class PipelineMlp
{
    /// <summary>The column the trivial transform writes and the trainer reads.</summary>
    private const string PixelsColumn = "Pixels";

    /// <summary>One pipeline run.</summary>
    /// <param name="EpochSeconds">Per-epoch seconds from the fitted transformer's <c>History</c> (training only: no validation split).</param>
    /// <param name="EpochCpuSeconds">Process CPU seconds of each epoch, from one progress report to the next (NaN for the first epoch).</param>
    /// <param name="LoadSeconds">Building the IDataView (<c>FashionMnist.Load</c>).</param>
    /// <param name="FitSeconds">The whole <c>pipeline.Fit</c>: schema checks, the validating first pass and caching, all epochs.</param>
    /// <param name="TotalSeconds">Load plus Fit.</param>
    /// <param name="FinalLoss">Mean training loss of the last epoch.</param>
    /// <param name="TestAccuracy">ML.NET's <c>MicroAccuracy</c> on the test split (not timed).</param>
    /// <param name="MacroAccuracy">ML.NET's <c>MacroAccuracy</c> on the test split.</param>
    public sealed record Result(double[] EpochSeconds, double[] EpochCpuSeconds, double LoadSeconds, double FitSeconds, double TotalSeconds, double FinalLoss,
        double TestAccuracy, double MacroAccuracy);

    /// <summary>CnnTrainer's defaults, with the benchmark's optimiser, batch, epochs and seed and no validation split.</summary>
    public static CnnTrainer.Options CnnOptions(MlpBenchmark.Settings s) =>
        Shared(new CnnTrainer.Options { ImageShape = new ImageShape(1, FashionMnist.Side, FashionMnist.Side) }, s);

    /// <summary>The settings both families take from the benchmark: columns, optimiser, batch, epochs, seed, no validation, CPU.</summary>
    private static T Shared<T>(T o, MlpBenchmark.Settings s) where T : DeepTrainerOptions
    {
        o.LabelColumnName = "Label";
        o.FeatureColumnName = PixelsColumn;
        o.Optimizer = DeepOptimizer.Adam;
        o.LearningRate = MlpBenchmark.LearningRate;
        o.BatchSize = s.BatchSize;
        o.Epochs = s.Epochs;
        o.ValidationFraction = 0;
        o.StandardizeFeatures = s.Standardize;
        o.Seed = s.Seed;
        o.Device = DeepDevice.Cpu;
        return o;
    }

    /// <summary>The exact network CnnTrainer builds for Fashion-MNIST, for the raw loop.</summary>
    public static Microsoft.ML.DeepExtensions.Models.CnnSpec CnnSpec(MlpBenchmark.Settings s) =>
        (Microsoft.ML.DeepExtensions.Models.CnnSpec)new MLContext().Deep().Cnn(CnnOptions(s)).Spec(FashionMnist.Pixels, FashionMnist.ClassNames.Count);

    public static Result Run(MlpBenchmark.Settings s)
    {
        var ml = new MLContext(seed: s.Seed);
        var total = Stopwatch.StartNew();
        var train = FashionMnist.Load(ml, s.DataDirectory, "train", s.Limit);
        double loadSeconds = total.Elapsed.TotalSeconds;

        var clock = new EpochCpuClock();
        var cnn = CnnOptions(s);
        cnn.Progress = clock;
        var options = Shared(new MlpTrainer.Options { HiddenLayers = [256, 128], Activation = Activation.Relu, Dropout = 0, BatchNorm = false }, s);
        options.Progress = clock;
        var pipeline = ml.Transforms.CopyColumns(PixelsColumn, "Features")
            .Append(s.Model == "cnn" ? (IEstimator<DeepTransformer>)ml.Deep().Cnn(cnn) : ml.Deep().Mlp(options));

        var fitWatch = Stopwatch.StartNew();
        var model = pipeline.Fit(train);
        double fitSeconds = fitWatch.Elapsed.TotalSeconds;
        double totalSeconds = total.Elapsed.TotalSeconds;

        using var deep = model.LastTransformer;
        var history = deep.History;
        if (history.Epochs.Count != s.Epochs || history.Epochs.Any(e => e.ValidationLoss is not null))
            throw new InvalidOperationException($"Expected {s.Epochs} epochs without validation; history has {history.Epochs.Count}.");

        // Test accuracy (outside the timings), the way an ML.NET user measures it.
        var test = FashionMnist.Load(ml, s.DataDirectory, "t10k", s.TestLimit);
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        return new Result(history.Epochs.Select(e => e.Seconds).ToArray(), clock.EpochCpuSeconds(), loadSeconds, fitSeconds, totalSeconds,
            history.Epochs[^1].TrainLoss, metrics.MicroAccuracy, metrics.MacroAccuracy);
    }

    /// <summary>Synchronous progress sink that stamps the process CPU time at the end of every epoch.</summary>
    private sealed class EpochCpuClock : IProgress<EpochRecord>
    {
        private readonly List<TimeSpan> _stamps = [];

        public void Report(EpochRecord value) => _stamps.Add(Environment.CpuUsage.TotalTime);

        /// <summary>CPU seconds between consecutive epoch ends; the first epoch has no start stamp (NaN).</summary>
        public double[] EpochCpuSeconds() =>
            _stamps.Select((t, i) => i == 0 ? double.NaN : (t - _stamps[i - 1]).TotalSeconds).ToArray();
    }
}
