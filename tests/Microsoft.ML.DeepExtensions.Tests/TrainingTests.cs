using Microsoft.ML;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The shared training loop: determinism, early stopping, cancellation, checkpoints, schedules, progress.</summary>
public class TrainingTests
{
    private readonly ITestOutputHelper _out;
    public TrainingTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void SameSeedAndDataGiveIdenticalWeights()
    {
        var ml = new MLContext();
        var data = Fixtures.DigitsBinary(ml, "train");
        var options = () => new MlpTrainer.Options { Epochs = 2, Seed = 11, HiddenLayers = [32, 16], Dropout = 0.2, BatchNorm = true };
        using var a = ml.Deep().Mlp(options()).Fit(data);
        using var b = ml.Deep().Mlp(options()).Fit(data);
        var wa = Fixtures.Weights(a);
        var wb = Fixtures.Weights(b);
        Assert.Equal(wa.Keys, wb.Keys);
        foreach (var k in wa.Keys) Assert.Equal(wa[k], wb[k]);

        var other = options();
        other.Seed = 12;
        using var c = ml.Deep().Mlp(other).Fit(data);
        Assert.NotEqual(wa["body.dense1.weight"], Fixtures.Weights(c)["body.dense1.weight"]);
    }

    [Fact]
    public void MLContextSeedMakesTheDefaultSeedDeterministic()
    {
        float[] Train() {
            var ml = new MLContext(seed: 5);
            using var m = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 1, HiddenLayers = [8] }).Fit(Fixtures.DigitsBinary(ml, "train"));
            return Fixtures.Weights(m)["body.output.weight"];
        }
        Assert.Equal(Train(), Train());
    }

    [Fact]
    public void EarlyStoppingStopsAndRestoresTheBestEpoch()
    {
        var ml = new MLContext();
        // A wide net with a large learning rate overfits the small optdigits set quickly, so validation loss turns up.
        var options = new MlpTrainer.Options
        {
            Epochs = 60, Seed = 3, HiddenLayers = [256, 256], Dropout = 0, LearningRate = 3e-3, ValidationFraction = 0.3,
            EarlyStopping = new EarlyStoppingOptions { Patience = 2 },
        };
        var (train, _) = Fixtures.Digits(ml);
        using var model = ml.Deep().Mlp(options).Fit(train);
        var h = model.History;
        _out.WriteLine(h.ToString());
        Assert.Equal(StopReason.EarlyStopped, h.StopReason);
        Assert.True(h.Epochs.Count < 60);
        int best = h.Epochs.MinBy(e => e.ValidationLoss!.Value)!.Epoch;
        Assert.Equal(best, h.BestEpoch);
        Assert.Equal(best + 2, h.Epochs.Count);

        // The restored weights really are the best epoch's: re-evaluating gives that epoch's validation loss.
        var again = new MlpTrainer.Options { Epochs = best, Seed = 3, HiddenLayers = [256, 256], Dropout = 0, LearningRate = 3e-3, ValidationFraction = 0.3 };
        using var reference = ml.Deep().Mlp(again).Fit(train);
        Assert.Equal(Fixtures.Weights(reference)["body.output.weight"], Fixtures.Weights(model)["body.output.weight"]);
    }

    // Cancels the run part-way through an epoch (after a few of its batches).
    private sealed class CancelMidEpoch(CancellationTokenSource cts, int epoch) : TrainingCallback
    {
        public override void OnBatchEnd(TrainingContext context)
        {
            if (context.Epoch == epoch && context.Batch == 3) cts.Cancel();
        }
    }

    [Fact]
    public void RestoreBestWeightsHoldsWhenCancelledMidEpochAndAcrossAResume()
    {
        var ml = new MLContext();
        var data = Fixtures.DigitsBinary(ml, "train");
        var dir = Fixtures.TempDir();
        MlpTrainer.Options Options(int epochs) => new() { Epochs = epochs, Seed = 5, HiddenLayers = [32], ValidationFraction = 0.2, BatchSize = 32 };
        using var reference = ml.Deep().Mlp(Options(2)).Fit(data);

        // Cancelled after 3 batches of epoch 3: the weights are the best validated epoch's, not those of the batches after it.
        using (var cts = new CancellationTokenSource())
        {
            var o = Options(10);
            (o.EarlyStopping, o.CancellationToken, o.CheckpointDirectory) = (new EarlyStoppingOptions { Patience = 100, RestoreBestWeights = true }, cts.Token, dir);
            o.Callbacks.Add(new CancelMidEpoch(cts, 3));
            using var cancelled = ml.Deep().Mlp(o).Fit(data);
            Assert.Equal(StopReason.Cancelled, cancelled.History.StopReason);
            Assert.Equal(2, cancelled.History.Epochs.Count);
            int best = cancelled.History.BestEpoch;
            using var bestRun = ml.Deep().Mlp(Options(best)).Fit(data);
            Assert.Equal(Fixtures.Weights(bestRun)["body.output.weight"], Fixtures.Weights(cancelled)["body.output.weight"]);
        }

        // Resumed after epoch 2 and cancelled in the first epoch it runs: the weights it resumed from come back.
        using (var cts = new CancellationTokenSource())
        {
            var o = Options(10);
            (o.EarlyStopping, o.CancellationToken) = (new EarlyStoppingOptions { Patience = 100, RestoreBestWeights = true }, cts.Token);
            o.ResumeFromCheckpoint = Directory.GetFiles(dir, "*.deepckpt").Order().Last();
            o.Callbacks.Add(new CancelMidEpoch(cts, 3));
            using var resumed = ml.Deep().Mlp(o).Fit(data);
            Assert.Equal(2, resumed.History.Epochs.Count);
            Assert.Equal(Fixtures.Weights(reference)["body.output.weight"], Fixtures.Weights(resumed)["body.output.weight"]);
        }
    }

    [Fact]
    public void CancellationStopsPromptlyAndKeepsTheModel()
    {
        var ml = new MLContext();
        var (train, test) = Fixtures.Digits(ml);
        using var cts = new CancellationTokenSource();
        var options = new MlpTrainer.Options { Epochs = 1000, Seed = Fixtures.Seed(1), HiddenLayers = [64], CancellationToken = cts.Token };
        var trainer = ml.Deep().Mlp(options);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        double cancelledAt = 0;
        trainer.EpochCompleted += (_, r) => { if (r.Epoch == 2) { cts.Cancel(); cancelledAt = watch.Elapsed.TotalSeconds; } };
        using var model = trainer.Fit(train);
        double stoppedAfter = watch.Elapsed.TotalSeconds - cancelledAt;
        _out.WriteLine($"stopped {stoppedAfter * 1000:F0} ms after Cancel(); epochs {model.History.Epochs.Count}");
        Assert.Equal(StopReason.Cancelled, model.History.StopReason);
        Assert.Equal(2, model.History.Epochs.Count);
        Assert.True(stoppedAfter < 2, $"took {stoppedAfter:F2}s to stop");
        // Nothing is lost: the model holds exactly what two uninterrupted epochs would have produced.
        using var twoEpochs = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 2, Seed = Fixtures.Seed(1), HiddenLayers = [64] }).Fit(train);
        Assert.Equal(Fixtures.Weights(twoEpochs)["body.output.weight"], Fixtures.Weights(model)["body.output.weight"]);
        var m = ml.MulticlassClassification.Evaluate(model.Transform(test));
        Assert.True(Fixtures.Quality("TrainingTests.CancellationStopsPromptlyAndKeepsTheModel: m.MicroAccuracy", m.MicroAccuracy) > 0.75, $"accuracy {m.MicroAccuracy}");
    }

    [Fact]
    public void CancellationMidEpochIsPrompt()
    {
        var ml = new MLContext();
        var (train, _) = Fixtures.Digits(ml);
        using var cts = new CancellationTokenSource();
        var options = new MlpTrainer.Options { Epochs = 1000, Seed = 1, HiddenLayers = [256, 256], BatchSize = 16, CancellationToken = cts.Token };
        var trainer = ml.Deep().Mlp(options);
        trainer.EpochCompleted += (_, r) => { if (r.Epoch == 1) cts.CancelAfter(TimeSpan.FromMilliseconds(150)); };
        var watch = System.Diagnostics.Stopwatch.StartNew();
        using var model = trainer.Fit(train);
        var first = model.History.Epochs[0].Seconds;
        _out.WriteLine($"first epoch {first:F2}s, total {watch.Elapsed.TotalSeconds:F2}s, epochs {model.History.Epochs.Count}");
        Assert.Equal(StopReason.Cancelled, model.History.StopReason);
        Assert.True(watch.Elapsed.TotalSeconds < first * 3 + 2);
    }

    [Fact]
    public void CancellationBeforeAnyEpochThrows()
    {
        var ml = new MLContext();
        var options = Fixtures.QuickMlp();
        options.CancellationToken = new CancellationToken(canceled: true);
        Assert.ThrowsAny<OperationCanceledException>(() => ml.Deep().Mlp(options).Fit(Fixtures.DigitsBinary(ml, "train")));
    }

    [Fact]
    public void ResumingFromACheckpointReproducesAnUninterruptedRun()
    {
        var ml = new MLContext();
        var data = Fixtures.DigitsBinary(ml, "train");
        var dir = Fixtures.TempDir();
        MlpTrainer.Options Options(int epochs) => new()
        {
            Epochs = epochs, Seed = 21, HiddenLayers = [32], Dropout = 0.3, ValidationFraction = 0.2,
            LearningRateSchedule = LearningRateSchedule.Cosine(),
        };
        var full = Options(4);
        full.CheckpointDirectory = dir;
        full.CheckpointEveryEpochs = 2;
        using var uninterrupted = ml.Deep().Mlp(full).Fit(data);
        var checkpoints = Directory.GetFiles(dir, "*.deepckpt").Order().ToArray();
        Assert.Equal(2, checkpoints.Length);

        var resume = Options(4);
        resume.ResumeFromCheckpoint = checkpoints[0];   // after epoch 2
        using var resumed = ml.Deep().Mlp(resume).Fit(data);
        Assert.Equal(4, resumed.History.Epochs.Count);
        Assert.Equal(uninterrupted.History.Epochs[1].TrainLoss, resumed.History.Epochs[1].TrainLoss);
        var a = Fixtures.Weights(uninterrupted);
        var b = Fixtures.Weights(resumed);
        foreach (var k in a.Keys) Assert.Equal(a[k], b[k]);

        var wrong = new MlpTrainer.Options { Epochs = 4, HiddenLayers = [64], ResumeFromCheckpoint = checkpoints[0] };
        var ex = Assert.Throws<InvalidOperationException>(() => ml.Deep().Mlp(wrong).Fit(data));
        Assert.Contains("different network", ex.Message);
    }

    [Theory]
    [InlineData(DeepOptimizer.Sgd)]
    [InlineData(DeepOptimizer.Adam)]
    [InlineData(DeepOptimizer.AdamW)]
    [InlineData(DeepOptimizer.RmsProp)]
    public void EveryOptimizerLearns(DeepOptimizer optimizer)
    {
        var ml = new MLContext();
        var options = new MlpTrainer.Options
        {
            Epochs = 4, Seed = Fixtures.Seed(2), HiddenLayers = [64], Optimizer = optimizer, WeightDecay = 1e-4, GradientClipNorm = 1.0,
            LearningRate = optimizer == DeepOptimizer.Sgd ? 0.05 : 1e-3,
        };
        using var model = ml.Deep().Mlp(options).Fit(Fixtures.DigitsBinary(ml, "train"));
        var m = ml.BinaryClassification.Evaluate(model.Transform(Fixtures.DigitsBinary(ml, "test")));
        _out.WriteLine($"{optimizer}: accuracy {m.Accuracy:F4}");
        Assert.True(Fixtures.Quality("TrainingTests.EveryOptimizerLearns: m.Accuracy", m.Accuracy) > 0.88, $"{optimizer}: {m.Accuracy}");   // 3 seeds × 4 optimizers: min 0.922
        Assert.True(model.History.Epochs[^1].TrainLoss < model.History.Epochs[0].TrainLoss);
    }

    [Fact]
    public void SchedulesSetTheLearningRatePerEpoch()
    {
        var ml = new MLContext();
        var data = Fixtures.DigitsBinary(ml, "train");
        double[] Rates(LearningRateSchedule s)
        {
            var o = Fixtures.QuickMlp(4);
            o.LearningRate = 0.01;
            o.LearningRateSchedule = s;
            using var m = ml.Deep().Mlp(o).Fit(data);
            return m.History.Epochs.Select(e => e.LearningRate).ToArray();
        }
        Assert.Equal(new[] { 0.01, 0.01, 0.001, 0.001 }, Rates(LearningRateSchedule.Step(2, 0.1)).Select(r => Math.Round(r, 6)));
        var cosine = Rates(LearningRateSchedule.Cosine());
        Assert.Equal(0.01, cosine[0], 9);
        Assert.True(cosine[1] < cosine[0] && cosine[2] < cosine[1] && cosine[3] < cosine[2]);
        var plateau = Rates(LearningRateSchedule.ReduceOnPlateau(0.5, 0));
        Assert.All(plateau, r => Assert.True(r <= 0.01));
    }

    [Fact]
    public void ClassWeightsShiftTheDecision()
    {
        var ml = new MLContext();
        var data = Fixtures.DigitsBinary(ml, "train");
        double PositiveRate(float[] weights)
        {
            var o = Fixtures.QuickMlp(3);
            o.ClassWeights = weights;
            using var m = ml.Deep().Mlp(o).Fit(data);
            var preds = ml.Data.CreateEnumerable<Fixtures.BinaryPrediction>(m.Transform(Fixtures.DigitsBinary(ml, "test")), false);
            return preds.Average(p => p.PredictedLabel ? 1.0 : 0.0);
        }
        double neutral = PositiveRate([1, 1]), favourPositive = PositiveRate([1, 20]);
        _out.WriteLine($"positive rate: neutral {neutral:F3}, weighted {favourPositive:F3}");
        Assert.True(favourPositive > neutral + 0.02);
    }

    [Fact]
    public void ProgressReportsEveryEpoch()
    {
        var ml = new MLContext();
        var seen = new List<EpochRecord>();
        var logged = new List<string>();
        ml.Log += (_, e) => { if (e.Message.Contains("Epoch")) logged.Add(e.Message); };
        var o = Fixtures.QuickMlp(3);
        o.Progress = new SyncProgress(seen.Add);
        int events = 0;
        var trainer = ml.Deep().Mlp(o);
        trainer.EpochCompleted += (_, _) => events++;
        using var model = trainer.Fit(Fixtures.DigitsBinary(ml, "train"));
        Assert.Equal(3, seen.Count);
        Assert.Equal(3, events);
        Assert.Equal(new[] { 1, 2, 3 }, seen.Select(r => r.Epoch));
        Assert.All(seen, r => { Assert.NotNull(r.ValidationLoss); Assert.Equal("accuracy", r.MetricName); Assert.True(r.Seconds > 0); });
        Assert.Equal(3, logged.Count);
        Assert.Equal(seen, model.History.Epochs);
    }

    private sealed class SyncProgress(Action<EpochRecord> report) : IProgress<EpochRecord>
    {
        public void Report(EpochRecord value) => report(value);
    }

    [Fact]
    public void StreamingAndCachedDataTrainTheSameModel()
    {
        var ml = new MLContext();
        var data = Fixtures.DigitsBinary(ml, "train");
        var cached = Fixtures.QuickMlp(2);
        var streamed = Fixtures.QuickMlp(2);
        streamed.CacheBudgetMegabytes = 0;   // nothing fits: stream from the cursor every epoch
        using var a = ml.Deep().Mlp(cached).Fit(data);
        using var b = ml.Deep().Mlp(streamed).Fit(data);
        var test = Fixtures.DigitsBinary(ml, "test");
        var ma = ml.BinaryClassification.Evaluate(a.Transform(test));
        var mb = ml.BinaryClassification.Evaluate(b.Transform(test));
        _out.WriteLine($"cached {ma.Accuracy:F4}, streamed {mb.Accuracy:F4}");
        Assert.True(Fixtures.Quality("TrainingTests.StreamingAndCachedDataTrainTheSameModel: mb.Accuracy", mb.Accuracy) > 0.85);   // 3 seeds: min 0.897
        // Same rows in each split (the split is a hash of the row index), so the validation sets agree in size.
        Assert.Equal(a.History.Epochs.Count, b.History.Epochs.Count);
    }

    [Fact]
    public void SummaryListsLayersAndParameters()
    {
        var ml = new MLContext();
        var trainer = ml.Deep().Mlp(new MlpTrainer.Options { HiddenLayers = [256, 128], Dropout = 0.1 });
        var summary = trainer.Spec(784, 10).Summary();
        _out.WriteLine(summary.ToString());
        Assert.Equal(784L * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10, summary.TotalParameters);
        using var model = ml.Deep().Mlp(Fixtures.QuickMlp(1)).Fit(Fixtures.DigitsBinary(ml, "train"));
        long actual = model.Network.Body.parameters().Sum(p => p.numel());
        Assert.Equal(actual, model.Summary().TotalParameters);
        Assert.Contains("Total params", model.Summary().ToString());
    }

    /// <summary>Gradient clipping stays on the device and gives what TorchSharp's clip_grad_norm_ gives (which reads the norm back every batch).</summary>
    [Theory]
    [InlineData(0.05)]   // clips
    [InlineData(1e6)]    // leaves the gradients as they are
    public void DeviceSideClippingMatchesClipGradNorm(double maxNorm)
    {
        float[][] Grads(bool ours)
        {
            TorchSharp.torch.manual_seed(3);
            using var net = TorchSharp.torch.nn.Sequential(TorchSharp.torch.nn.Linear(5, 4), TorchSharp.torch.nn.ReLU(), TorchSharp.torch.nn.Linear(4, 2));
            using var x = TorchSharp.torch.randn(8, 5);
            using var loss = net.call(x).square().sum();
            loss.backward();
            if (ours) Optimizers.ClipGradients(net.parameters(), maxNorm);
            else TorchSharp.torch.nn.utils.clip_grad_norm_(net.parameters(), maxNorm);
            return net.parameters().Select(p => { using var g = p.grad!; return g.data<float>().ToArray(); }).ToArray();
        }
        var expected = Grads(ours: false);
        var actual = Grads(ours: true);
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            for (int j = 0; j < expected[i].Length; j++)
                Assert.Equal(expected[i][j], actual[i][j], 1e-6f);
    }
}
