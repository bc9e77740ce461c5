using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.DeepExtensions.Training;
using Xunit.Abstractions;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>User-written callbacks on the one training loop, and the GAN's checkpoints through it.</summary>
public sealed class CallbackTests(ITestOutputHelper output)
{
    /// <summary>What a user writes: a CSV logger of every epoch (the README's example).</summary>
    private sealed class CsvLogger(string path) : TrainingCallback
    {
        public override void OnTrainBegin(TrainingContext context) => File.WriteAllText(path, "epoch,loss,val_loss,lr\n");

        public override void OnEpochEnd(TrainingContext context)
        {
            var r = context.Record!;
            File.AppendAllText(path, string.Create(CultureInfo.InvariantCulture, $"{r.Epoch},{r.TrainLoss},{r.ValidationLoss},{r.LearningRate}\n"));
        }
    }

    /// <summary>Counts every hook, halves the learning rate each epoch, and stops after <paramref name="stopAfterBatches"/> batches.</summary>
    private sealed class Recorder(int stopAfterBatches) : TrainingCallback
    {
        public List<string> Calls { get; } = [];
        public List<int> BatchesPerEpoch { get; } = [];
        public long RowsSeen { get; private set; }
        public override void OnTrainBegin(TrainingContext c) => Calls.Add($"train-begin:{c.TrainerName}:{c.TotalEpochs}");
        public override void OnEpochBegin(TrainingContext c)
        {
            Calls.Add($"epoch-begin:{c.Epoch}");
            c.LearningRate = c.BaseLearningRate / Math.Pow(2, c.Epoch - 1);
        }
        public override void OnBatchEnd(TrainingContext c)
        {
            RowsSeen++;
            if (c.Epoch * 1000 + c.Batch >= stopAfterBatches) c.Stop();
        }
        public override void OnEpochEnd(TrainingContext c)
        {
            Calls.Add($"epoch-end:{c.Record!.Epoch}");
            BatchesPerEpoch.Add(c.Batch);
        }
        public override void OnTrainEnd(TrainingContext c) => Calls.Add($"train-end:{c.History.StopReason}");
    }

    [Fact]
    public void UserCallbacksSeeEveryHookSetTheRateAndStopTraining()
    {
        var ml = new MLContext();
        var data = Fixtures.DigitsBinary(ml, "train");
        long rows = ml.Data.CreateEnumerable<Fixtures.BinaryRow>(data, false).Count();
        var csv = Path.Combine(Fixtures.TempDir(), "log.csv");
        var recorder = new Recorder(stopAfterBatches: int.MaxValue);
        var options = Fixtures.QuickMlp(epochs: 3);
        options.ValidationFraction = 0;
        options.LearningRate = 0.01;
        options.Callbacks = [recorder, new CsvLogger(csv)];
        using var model = ml.Deep().Mlp(options).Fit(data);

        Assert.Equal(["train-begin:MlpTrainer:3", "epoch-begin:1", "epoch-end:1", "epoch-begin:2", "epoch-end:2", "epoch-begin:3", "epoch-end:3", "train-end:Completed"], recorder.Calls);
        int batches = (int)Math.Ceiling(rows / 64.0);
        Assert.Equal([batches, batches, batches], recorder.BatchesPerEpoch);
        Assert.Equal(3L * batches, recorder.RowsSeen);
        Assert.Equal([0.01, 0.005, 0.0025], model.History.Epochs.Select(e => Math.Round(e.LearningRate, 6)));
        var lines = File.ReadAllLines(csv);
        output.WriteLine(string.Join("\n", lines));
        Assert.Equal(4, lines.Length);
        Assert.Equal(model.History.Epochs[2].TrainLoss, double.Parse(lines[3].Split(',')[1], CultureInfo.InvariantCulture));

        // A stopping rule at a batch ends training after that batch: the epoch is still validated and recorded.
        var stopper = new Recorder(stopAfterBatches: 2000 + 3);
        var stopping = Fixtures.QuickMlp(epochs: 5);
        stopping.Callbacks = [stopper];
        using var stopped = ml.Deep().Mlp(stopping).Fit(data);
        Assert.Equal(StopReason.Stopped, stopped.History.StopReason);
        Assert.Equal(2, stopped.History.Epochs.Count);
        Assert.Equal(3, stopper.BatchesPerEpoch[^1]);
        Assert.NotNull(stopped.History.Epochs[^1].ValidationLoss);
        Assert.Equal("train-end:Stopped", stopper.Calls[^1]);
    }

    [Fact]
    public void ACallbackThatThrowsFailsTheFitWithItsException()
    {
        var ml = new MLContext();
        var options = Fixtures.QuickMlp(epochs: 2);
        options.Callbacks = [new Throwing()];
        var ex = Assert.Throws<InvalidOperationException>(() => ml.Deep().Mlp(options).Fit(Fixtures.DigitsBinary(ml, "train")));
        Assert.Equal("my rule", ex.Message);
        Assert.Throws<ArgumentException>(() => ml.Deep().Mlp(new MlpTrainer.Options { Callbacks = [null!] }).Fit(Fixtures.DigitsBinary(ml, "train")));
    }

    private sealed class Throwing : TrainingCallback
    {
        public override void OnEpochEnd(TrainingContext context) => throw new InvalidOperationException("my rule");
    }

    [Fact]
    public void GanCheckpointResumeGivesTheUninterruptedWeightsAndSchedulesApply()
    {
        var ml = new MLContext(seed: 1);
        var (train, _) = Fixtures.Digits(ml);
        var dir = Fixtures.TempDir();
        GanTrainer.Options Options() => new()
        {
            LabelColumnName = "Label", Epochs = 4, Seed = 5, NumberOfThreads = 1, BatchSize = 128,
            LearningRateSchedule = LearningRateSchedule.Cosine(),
        };
        var full = Options();
        full.CheckpointDirectory = dir;
        full.CheckpointEveryEpochs = 2;
        using var uninterrupted = ml.Deep().Gan(full).Fit(train);
        var checkpoints = Directory.GetFiles(dir, "*.deepckpt").Order().ToArray();
        Assert.Equal(2, checkpoints.Length);
        Assert.True(uninterrupted.History.Epochs[3].LearningRate < uninterrupted.History.Epochs[0].LearningRate);

        var resume = Options();
        resume.ResumeFromCheckpoint = checkpoints[0];   // after epoch 2
        using var resumed = ml.Deep().Gan(resume).Fit(train);
        Assert.Equal(4, resumed.History.Epochs.Count);
        var a = Fixtures.Weights(uninterrupted.Network);
        var b = Fixtures.Weights(resumed.Network);
        Assert.Equal(a.Keys, b.Keys);
        foreach (var k in a.Keys) Assert.Equal(a[k], b[k]);
        Assert.Equal(uninterrupted.History.Epochs[3].Losses, resumed.History.Epochs[3].Losses);
    }

    [Fact]
    public void GanRejectsOptionsThatMeanNothingForIt()
    {
        var ml = new MLContext();
        var (train, _) = Fixtures.Digits(ml);
        var early = Assert.Throws<ArgumentException>(() => ml.Deep().Gan(new GanTrainer.Options { EarlyStopping = new() }).Fit(train));
        Assert.Contains("EarlyStopping", early.Message);
        var task = Assert.Throws<ArgumentException>(() => ml.Deep().Gan(new GanTrainer.Options { Task = DeepTask.Regression }).Fit(train));
        Assert.Contains("does not apply to a GAN", task.Message);
        Assert.Throws<ArgumentException>(() => ml.Deep().Gan(new GanTrainer.Options { ValidationFraction = 0.2 }).Fit(train));
        Assert.Throws<ArgumentException>(() => ml.Deep().Gan(new GanTrainer.Options { BalanceClasses = true }).Fit(train));
    }
}
