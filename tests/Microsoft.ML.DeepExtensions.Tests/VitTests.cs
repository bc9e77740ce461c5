using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.DeepExtensions.Models;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The vision transformer: patch tokens, Fashion-MNIST learning, attention over patches, save/load, clear errors.</summary>
public class VitTests
{
    private readonly ITestOutputHelper _out;
    public VitTests(ITestOutputHelper output) => _out = output;

    private static (IDataView Train, IDataView Test) Fashion(MLContext ml, int train, int test)
    {
        var trainDir = FashionMnist.FindDirectory("train");
        if (trainDir != null)
            return (FashionMnist.Load(ml, trainDir, "train", limit: train), FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: test));
        var split = ml.Data.TrainTestSplit(FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: train + test), (double)test / (train + test), seed: 1);
        return (split.TrainSet, split.TestSet);
    }

    [Fact]
    public void SummaryCountsPatchesTokensAndParameters()
    {
        var ml = new MLContext(seed: 1);
        var options = new VitTrainer.Options { PatchSize = 7, Dimension = 32, Heads = 2, Layers = 2, FeedForwardSize = 64, Pooling = SequencePooling.Cls };
        var summary = ml.Deep().Vit(options).Spec(784, 10).Summary();
        _out.WriteLine(summary.ToString());
        Assert.Equal("ViT", summary.Family);
        Assert.Equal(new long[] { 16, 49 }, summary.Layers.Single(l => l.Name.StartsWith("patches (4×4 of 7×7)")).OutputShape);
        Assert.Equal((49 + 1) * 32, summary.Layers.Single(l => l.Name.StartsWith("patch embedding")).Parameters);
        Assert.Equal(new long[] { 17, 32 }, summary.Layers.Single(l => l.Name.StartsWith("positions")).OutputShape);   // 16 patches + [CLS]

        var data = ml.Data.TakeRows(Fashion(ml, 300, 10).Train, 300);
        options.Epochs = 1;
        options.ValidationFraction = 0;
        using var model = ml.Deep().Vit(options).Fit(data);
        Assert.Equal(model.Network.Body.parameters().Sum(p => p.numel()), model.Summary().TotalParameters);
        Assert.Equal("ViT", model.Family);
    }

    [Fact]
    public void ConvolutionalStemHalvesTheImageOncePerFactorTwoOfThePatch()
    {
        var ml = new MLContext(seed: 1);
        var options = new VitTrainer.Options { PatchSize = 4, ConvolutionalStem = true, Dimension = 32, Heads = 2, Layers = 1, FeedForwardSize = 32 };
        var summary = ml.Deep().Vit(options).Spec(784, 10).Summary();
        _out.WriteLine(summary.ToString());
        var stem = summary.Layers.Where(l => l.Name.StartsWith("stem conv")).ToList();
        Assert.Equal([new long[] { 16, 14, 14 }, new long[] { 32, 7, 7 }], stem.Select(l => l.OutputShape));
        Assert.Equal(1 * 9 * 16 + 2 * 16, stem[0].Parameters);
        Assert.Equal(new long[] { 49, 32 }, summary.Layers.Single(l => l.Name.StartsWith("patches (7×7 of 4×4")).OutputShape);   // 1×1 patches of 32 channels
        Assert.Equal((32 + 1) * 32, summary.Layers.Single(l => l.Name.StartsWith("patch embedding")).Parameters);

        var data = ml.Data.TakeRows(Fashion(ml, 300, 10).Train, 300);
        options.Epochs = 1;
        options.ValidationFraction = 0;
        using var model = ml.Deep().Vit(options).Fit(data);
        Assert.Equal(model.Network.Body.parameters().Sum(p => p.numel()), model.Summary().TotalParameters);
        Assert.Equal(49, model.AttentionWeights(data, layer: 0, maxRows: 1)[0].Tokens.Length);

        options.PatchSize = 7;   // odd: one stride-1 convolution of d/2 channels
        Assert.Equal(new long[] { 16, 28, 28 }, ml.Deep().Vit(options).Spec(784, 10).Summary().Layers.Single(l => l.Name.StartsWith("stem conv")).OutputShape);
    }

    [Fact]
    public void LearnsFashionMnistSubset()
    {
        // CI-sized: 6,000 training and 2,000 test images, 4 epochs of a 2-layer ViT on 7×7 patches (375 steps). Without a
        // CNN's built-in locality a ViT needs many more steps than that: 0.697 measured here (a CNN reaches 0.84 in 2
        // epochs); the full 60k/10k run of the default ViT is in benchmarks/ (vision).
        var ml = new MLContext(seed: 1);
        var (train, test) = Fashion(ml, 6000, 2000);
        var options = new VitTrainer.Options
        {
            PatchSize = 7, Dimension = 64, Layers = 2, Epochs = 4, BatchSize = 64, LearningRate = 2e-3, Seed = Fixtures.Seed(1), ValidationFraction = 0,
        };
        using var model = ml.Deep().Vit(options).Fit(train);
        var m = ml.MulticlassClassification.Evaluate(model.Transform(test));
        _out.WriteLine($"Fashion-MNIST subset ViT: micro {m.MicroAccuracy:F4}, macro {m.MacroAccuracy:F4}; " +
                       $"epoch seconds {string.Join(", ", model.History.Epochs.Select(e => e.Seconds.ToString("F1")))}");
        Assert.True(Fixtures.Quality("VitTests.LearnsFashionMnistSubset: m.MicroAccuracy", m.MicroAccuracy) >= 0.60, $"accuracy {m.MicroAccuracy:F4}");
    }

    [Fact]
    public void ConvolutionalStemLearnsFashionMnistSubset()
    {
        // The same 6,000 / 2,000 images as above, 2 epochs, 4×4 patches cut from a two-convolution stem: 0.615 measured
        // (0.603 and 0.695 at seed shifts 1000 and 2000)
        // (the plain ViT on 4×4 patches: 0.485 after 3 epochs on 6,000 images, the stem 0.637; benchmarks/ vision).
        var ml = new MLContext(seed: 1);
        var (train, test) = Fashion(ml, 6000, 2000);
        var options = new VitTrainer.Options
        {
            PatchSize = 4, ConvolutionalStem = true, Dimension = 64, Layers = 2, Epochs = 2, BatchSize = 64, LearningRate = 2e-3, Seed = Fixtures.Seed(1), ValidationFraction = 0,
        };
        using var model = ml.Deep().Vit(options).Fit(train);
        var m = ml.MulticlassClassification.Evaluate(model.Transform(test));
        _out.WriteLine($"Fashion-MNIST subset ViT with a convolutional stem: micro {m.MicroAccuracy:F4}; " +
                       $"epoch seconds {string.Join(", ", model.History.Epochs.Select(e => e.Seconds.ToString("F1")))}");
        Assert.True(Fixtures.Quality("VitTests.ConvolutionalStemLearnsFashionMnistSubset: m.MicroAccuracy", m.MicroAccuracy) >= 0.5, $"accuracy {m.MicroAccuracy:F4}");
    }

    [Fact]
    public void AttentionMapsCoverThePatchesAndScoringIsDeterministic()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(Fashion(ml, 400, 10).Train, 400);
        var options = new VitTrainer.Options { PatchSize = 7, Dimension = 16, Heads = 2, Layers = 2, FeedForwardSize = 32, Epochs = 1, Seed = 1, ValidationFraction = 0 };
        using var model = ml.Deep().Vit(options).Fit(data);   // default augmentation (shifts) is on while training

        var maps = model.AttentionWeights(data, layer: 1, maxRows: 3);
        Assert.Equal(3, maps.Count);
        Assert.Equal(16, maps[0].Tokens.Length);
        Assert.Equal("patch 1,1", maps[0].Tokens[0]);
        Assert.Equal("patch 4,4", maps[0].Tokens[^1]);
        Assert.Equal(2, maps[0].Heads.Length);
        foreach (var head in maps[0].Heads.Append(maps[0].Mean))
            for (int i = 0; i < 16; i++)
                Assert.Equal(1.0, Enumerable.Range(0, 16).Sum(j => (double)head[i, j]), 1e-4);

        var s1 = ml.Data.CreateEnumerable<Fixtures.MulticlassPrediction>(model.Transform(data), false).Select(p => p.Score).ToList();
        var s2 = ml.Data.CreateEnumerable<Fixtures.MulticlassPrediction>(model.Transform(data), false).Select(p => p.Score).ToList();
        Assert.Equal(s1, s2);   // no random shifts at scoring

        var path = Path.Combine(Fixtures.TempDir(), "vit.zip");
        ml.Model.Save(model, data.Schema, path);
        var loaded = new MLContext().Deep().LoadModel(path, out _);
        var s3 = ml.Data.CreateEnumerable<Fixtures.MulticlassPrediction>(loaded.Transform(data), false).Select(p => p.Score).ToList();
        Assert.Equal(s1, s3);
    }

    [Fact]
    public void PatchSizesThatDoNotTileTheImageAreNamed()
    {
        var ml = new MLContext();
        var data = FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 50);
        var ex = Assert.Throws<InvalidOperationException>(() => ml.Deep().Vit(new VitTrainer.Options { PatchSize = 5 }).Fit(data));
        Assert.Contains("PatchSize 5 must divide the image's height and width (28×28)", ex.Message);
        Assert.Contains("2 or 4 or 7 or 14", ex.Message);

        var known = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Deep().Vit(new VitTrainer.Options { PatchSize = 3, ImageShape = new ImageShape(1, 28, 28) }).Fit(data));
        Assert.Contains("PatchSize", known.Message);

        var wrong = Assert.Throws<ArgumentException>(() => ml.Deep().Vit(new VitTrainer.Options { ImageShape = new ImageShape(1, 20, 20) }).Fit(data));
        Assert.Contains("784 values, but ImageShape 1×20×20 needs 400", wrong.Message);

        var heads = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Deep().Vit(new VitTrainer.Options { Dimension = 30, Heads = 4 }).Fit(data));
        Assert.Contains("Heads", heads.Message);
    }
}
