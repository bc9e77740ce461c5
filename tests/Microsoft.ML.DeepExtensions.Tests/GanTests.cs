using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Training;
using Xunit.Abstractions;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The GAN family: anomaly scores, synthetic tabular rows, conditional image generation, persistence, bad input.</summary>
public sealed class GanTests(ITestOutputHelper output)
{
    private readonly ITestOutputHelper _out = output;

    /// <summary>optdigits rows with the digit as a float, filtered by <paramref name="keep"/>.</summary>
    private static IDataView Digits(MLContext ml, string split, Func<float, bool> keep) =>
        ml.Data.LoadFromEnumerable(ml.Data.CreateEnumerable<TestData.DigitRow>(TestData.Digits(ml, split), reuseRowObject: false)
            .Where(r => keep(r.Digit)).Select(r => new Fixtures.BinaryRow { Features = r.Pixels, Label = r.Digit != 9 }));

    /// <summary>
    /// A GAN's discriminator as an anomaly detector. One seeded GAN is not a robust claim: adversarial training ends
    /// wherever the two networks' tug of war left off, and on optdigits single seeds ranged from AUC 0.55 to 0.81 on one
    /// CPU (and libtorch's kernels differ per CPU). The claim tested is the honest one: the average of three GANs'
    /// standardised scores ranks unseen 9s below held-out 0–8 clearly above chance (measured 0.641 on AMD EPYC; held to 0.57).
    /// </summary>
    [Fact]
    public void DiscriminatorRanksUnseenDigitAsLessReal()
    {
        var ml = new MLContext(seed: 1);
        var train = Digits(ml, "train", d => d != 9);
        // Held-out rows: digits 0–8 (Label true, "normal") and 9s (Label false, never seen in training).
        var test = Digits(ml, "test", _ => true);
        var labels = test.GetColumn<bool>("Label").ToArray();
        var ensemble = new double[labels.Length];
        foreach (int seed in new[] { 4, 5, 6 }.Select(Fixtures.Seed))
        {
            // No label smoothing: a smoothed target caps how confident the discriminator gets about real rows, which blunts it as a detector.
            using var gan = ml.Deep().Gan(new GanTrainer.Options { Epochs = 30, LabelSmoothing = 0, Seed = seed, NumberOfThreads = 1 }).Fit(train);
            var score = gan.Transform(test).GetColumn<float>("Score").ToArray();
            _out.WriteLine($"optdigits, GAN seed {seed} trained on 0–8: AUC of the discriminator score, held-out 0–8 vs 9: {GanMetrics.AreaUnderRocCurve(score, labels):F4}");
            double mean = score.Average(), sd = Math.Sqrt(score.Select(v => (v - mean) * (v - mean)).Average()) + 1e-9;
            for (int i = 0; i < score.Length; i++) ensemble[i] += (score[i] - mean) / sd;
            Assert.Equal(30, gan.History.Epochs.Count);
            var last = gan.History.Epochs[^1];
            Assert.True(last.Losses!["generator"] > 0 && last.Losses["discriminator"] > 0);
        }
        var auc = GanMetrics.AreaUnderRocCurve(ensemble.Select(v => (float)v).ToArray(), labels);
        _out.WriteLine($"three-GAN average: AUC {auc:F4}");
        Assert.True(Fixtures.Quality("GanTests.DiscriminatorRanksUnseenDigitAsLessReal: auc", auc) >= 0.57, $"AUC {auc:F4} < 0.57");
    }

    [Fact]
    public void SyntheticAdultRowsTrainAClassifierNearlyAsWellAsRealOnes()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(TestData.Adult(ml), 0.2, seed: 1);
        var prep = TestData.AdultFeaturizer(ml)
            .Append(ml.Transforms.Conversion.MapValueToKey("Class", "Label"))
            .Fit(split.TrainSet);
        var train = prep.Transform(split.TrainSet);
        var test = prep.Transform(split.TestSet);

        var gan = ml.Deep().Gan(new GanTrainer.Options
        {
            LabelColumnName = "Class", Loss = GanLoss.WassersteinGradientPenalty, DiscriminatorSteps = 5, Epochs = 25, BatchSize = 128, Seed = Fixtures.Seed(2), NumberOfThreads = 1,
        }).Fit(train);
        long rows = train.GetRowCount() ?? 26000;
        var synthetic = gan.Generate((int)rows, seed: 5);

        // The same classifier on real and on synthetic rows (the Boolean label back from the generated Key), tested on real rows.
        var classifier = ml.Transforms.Conversion.MapKeyToValue("Label", "Class")
            .Append(ml.BinaryClassification.Trainers.LightGbm(new Microsoft.ML.Trainers.LightGbm.LightGbmBinaryTrainer.Options { Seed = Fixtures.Seed(1), NumberOfThreads = 1 }));
        double real = ml.BinaryClassification.Evaluate(classifier.Fit(train).Transform(test)).Accuracy;
        double synth = ml.BinaryClassification.Evaluate(classifier.Fit(synthetic).Transform(test)).Accuracy;
        double majority = Math.Max(test.GetColumn<bool>("Label").Average(l => l ? 1.0 : 0), test.GetColumn<bool>("Label").Average(l => l ? 0 : 1.0));
        _out.WriteLine($"Adult: train-on-real {real:F4}, train-on-synthetic {synth:F4} ({rows} synthetic rows), gap {(real - synth) * 100:F2} points; majority class {majority:F4}");
        // The target is a gap of about 5 points (the generator emits exact one-hot categories, see GanSpec.OneHotGroups);
        // 3 seeds on one CPU gave 5.2, 5.8 and 7.6 points, so CI holds it to 9 (the majority class is 12 points below real).
        Assert.True(Fixtures.Quality("GanTests.SyntheticAdultRowsTrainAClassifierNearlyAsWellAsRealOnes: real - synth", real - synth) <= 0.09, $"train-on-synthetic {synth:F4} is more than 9 points below train-on-real {real:F4}");
        Assert.True(synth >= majority + 0.03, $"train-on-synthetic {synth:F4} barely beats the majority class {majority:F4}");
    }

    [Fact]
    public void ConditionalDcganDrawsRecognisableFashionItems()
    {
        var ml = new MLContext(seed: 1);
        var dir = FashionMnist.FindDirectory("train") ?? FashionMnist.FindDirectory("t10k");
        Assert.NotNull(dir);
        string split = FashionMnist.FindDirectory("train") is null ? "t10k" : "train";
        var real = FashionMnist.Load(ml, dir, split, limit: 6000);
        var judge = ml.Deep().Cnn(new CnnTrainer.Options { Epochs = 3, Seed = Fixtures.Seed(1), NumberOfThreads = 1 }).Fit(real);

        var gan = ml.Deep().Gan(new GanTrainer.Options
        {
            LabelColumnName = "Label", ImageShape = new ImageShape(1, 28, 28), GeneratorFilters = [64, 32], DiscriminatorFilters = [32, 64],
            Epochs = 4, Seed = Fixtures.Seed(4), NumberOfThreads = 1,
        }).Fit(real);
        var generated = gan.Generate(1000, seed: 9);
        var metrics = ml.MulticlassClassification.Evaluate(judge.Transform(generated));

        // Fréchet distance on the judge's penultimate features, against two real samples of the same size (the floor).
        var features = judge.Featurizer("Embedding");
        List<float[]> Embed(IDataView d) => features.Transform(d).GetColumn<float[]>("Embedding").ToList();
        var other = FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 2000);
        var realA = Embed(ml.Data.TakeRows(other, 1000));
        var realB = Embed(ml.Data.SkipRows(other, 1000));
        double fid = GanMetrics.FrechetDistance(Embed(generated), realA), floor = GanMetrics.FrechetDistance(realB, realA);
        _out.WriteLine($"Fashion-MNIST cDCGAN (6,000 images, 4 epochs): CNN labels {metrics.MicroAccuracy:P1} of 1,000 generated images as the requested class; " +
                       $"Fréchet distance {fid:F2} vs real-vs-real {floor:F2}");
        _out.WriteLine(gan.History.ToString());
        // Chance is 10 %; 3 seeds here: 38.9 %, 50.8 %, 55.0 %. The full-size run (benchmarks, 20,000+ images) is where the 80 % target is measured.
        Assert.True(Fixtures.Quality("GanTests.ConditionalDcganDrawsRecognisableFashionItems: metrics.MicroAccuracy", metrics.MicroAccuracy) >= 0.3, $"only {metrics.MicroAccuracy:P1} of the generated images are recognised as their class");
        Assert.True(fid > floor && double.IsFinite(fid), $"Fréchet distance {fid} should lie above the real-vs-real floor {floor}");

        var png = gan.ImageGrid(perClass: 4);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
    }

    [Fact]
    public void SavesLoadsScoresAndGeneratesTheSame()
    {
        var ml = new MLContext(seed: 1);
        var (train, _) = Fixtures.Digits(ml);
        var pipeline = ml.Transforms.CopyColumns("Pixels2", "Features")
            .Append(ml.Deep().Gan(new GanTrainer.Options { LabelColumnName = "Label", Epochs = 2, Seed = 1, NumberOfThreads = 1 }));
        var model = pipeline.Fit(train);
        var gan = (GanTransformer)model.LastTransformer;
        var path = Path.Combine(Path.GetTempPath(), $"gan-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext();
            fresh.Deep();
            var loaded = fresh.Model.Load(path, out _);
            var loadedGan = (GanTransformer)((TransformerChain<ITransformer>)loaded).LastTransformer;

            var before = model.Transform(train).GetColumn<float>("Score").Take(50).ToArray();
            var after = loaded.Transform(train).GetColumn<float>("Score").Take(50).ToArray();
            Assert.Equal(before, after);
            Assert.True(before.Distinct().Count() > 1);

            var engine = fresh.Model.CreatePredictionEngine<DigitInput, ScoreOutput>(loaded);
            var row = ml.Data.CreateEnumerable<DigitInput>(train, reuseRowObject: false).First();
            Assert.Equal(before[0], engine.Predict(row).Score, 1e-4);

            var a = gan.Generate(20, seed: 7, classIndex: 3);
            var b = loadedGan.Generate(20, seed: 7, classIndex: 3);
            Assert.Equal(a.GetColumn<float[]>("Features").SelectMany(v => v), b.GetColumn<float[]>("Features").SelectMany(v => v));
            Assert.All(b.GetColumn<uint>("Label"), k => Assert.Equal(4u, k));
            Assert.Equal(gan.ClassNames, loadedGan.ClassNames);
            Assert.Equal(20, loadedGan.Generate(20, 1).GetColumn<uint>("Label").Count());
            Assert.Equal(2, loadedGan.History.Epochs.Count);
            Assert.Equal(gan.Summary().TotalParameters, loadedGan.Summary().TotalParameters);
            Assert.True(gan.Summary().TotalParameters > 0);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void BadInputIsRejectedBeforeTraining()
    {
        var ml = new MLContext(seed: 1);
        var data = Fixtures.DigitsBinary(ml, "test");
        var notKey = Assert.Throws<ArgumentException>(() => ml.Deep().Gan(labelColumnName: "Label").Fit(data));
        Assert.Contains("'Label'", notKey.Message);
        Assert.Contains("Key", notKey.Message);
        var missing = Assert.Throws<ArgumentException>(() => ml.Deep().Gan(featureColumnName: "Pixels").Fit(data));
        Assert.Contains("'Pixels'", missing.Message);
        var shape = Assert.Throws<InvalidOperationException>(() => ml.Deep().Gan(imageShape: new ImageShape(1, 28, 28)).Fit(data));
        Assert.Contains("64", shape.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Deep().Gan(new GanTrainer.Options { DiscriminatorSteps = 0 }).Fit(data));
    }

    [Fact]
    public void WassersteinVariantTrainsAndReportsBothLosses()
    {
        var ml = new MLContext(seed: 1);
        var records = new List<EpochRecord>();
        var gan = ml.Deep().Gan(new GanTrainer.Options
        {
            Loss = GanLoss.WassersteinGradientPenalty, DiscriminatorSteps = 5, Beta1 = 0, Beta2 = 0.9, LearningRate = 1e-4,
            Epochs = 3, Seed = 1, NumberOfThreads = 1, Progress = new Progress<EpochRecord>(records.Add),
        }).Fit(Fixtures.DigitsBinary(ml, "test"));
        Assert.Equal(3, gan.History.Epochs.Count);
        Assert.All(gan.History.Epochs, e => Assert.True(double.IsFinite(e.Losses!["generator"]) && double.IsFinite(e.Losses["discriminator"])));
        Assert.Contains("discriminator_loss", gan.History.Epochs[0].ToString());
        var rows = gan.Generate(10, seed: 1).GetColumn<float[]>("Features").ToList();
        Assert.Equal(10, rows.Count);
        Assert.All(rows, r => Assert.Equal(64, r.Length));
    }

    public sealed class DigitInput
    {
        [VectorType(64)] public float[] Features { get; set; }
    }

    public sealed class ScoreOutput
    {
        public float Score { get; set; }
    }
}
