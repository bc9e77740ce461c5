using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The CNN family: the seed's worked example, Fashion-MNIST learning, image pipelines, clear spec errors.</summary>
public class CnnTests
{
    private readonly ITestOutputHelper _out;
    public CnnTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void SummaryReproducesTheSeedsWorkedExample()
    {
        // 32×32×1 input; 10 filters 5×5 stride 1 → 10 maps of 28×28 (7,840 outputs; 26 weights per filter = 260);
        // 2×2 max pooling stride 2 → 10×14×14; a dense layer of 200 → 1,960 + 1 weights per neuron = 392,200.
        var options = new CnnTrainer.Options
        {
            ImageShape = new ImageShape(1, 32, 32),
            ConvBlocks = [new ConvBlock { Filters = 10, Kernel = 5, Stride = 1, Padding = "valid", Pooling = Pooling.Max, PoolSize = 2, PoolStride = 2 }],
            DenseLayers = [200],
            DenseDropout = 0,
        };
        var summary = new MLContext().Deep().Cnn(options).Spec(32 * 32, 10).Summary();
        _out.WriteLine(summary.ToString());
        var conv = summary.Layers.Single(l => l.Name.StartsWith("conv1"));
        Assert.Equal(new long[] { 10, 28, 28 }, conv.OutputShape);
        Assert.Equal(7_840, conv.OutputShape.Aggregate(1L, (a, b) => a * b));
        Assert.Equal(260, conv.Parameters);
        var pool = summary.Layers.Single(l => l.Name.StartsWith("maxpool1"));
        Assert.Equal(new long[] { 10, 14, 14 }, pool.OutputShape);
        Assert.Equal(new long[] { 1_960 }, summary.Layers.Single(l => l.Name == "flatten").OutputShape);
        var dense = summary.Layers.Single(l => l.Name.StartsWith("dense1"));
        Assert.Equal(392_200, dense.Parameters);
        Assert.Equal(260 + 392_200 + 200 * 10 + 10, summary.TotalParameters);
    }

    [Fact]
    public void FittedModelSummaryMatchesItsParameters()
    {
        var ml = new MLContext(seed: 1);
        var data = FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 300);
        using var model = ml.Deep().Cnn(new CnnTrainer.Options { Epochs = 1, Seed = 1, ValidationFraction = 0 }).Fit(data);
        long actual = model.Network.Body.parameters().Sum(p => p.numel());
        Assert.Equal(actual, model.Summary().TotalParameters);
        Assert.Equal("CNN", model.Family);
    }

    [Fact]
    public void LearnsFashionMnistSubset()
    {
        // CI-sized: 6,000 training and 2,000 test images, 2 epochs. The full 60k/10k, 5-epoch run is in benchmarks/.
        var ml = new MLContext(seed: 1);
        var trainDir = FashionMnist.FindDirectory("train");
        IDataView train, test;
        if (trainDir != null)
        {
            train = FashionMnist.Load(ml, trainDir, "train", limit: 6000);
            test = FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 2000);
        }
        else
        {
            var split = ml.Data.TrainTestSplit(FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 8000), 0.25, seed: 1);
            (train, test) = (split.TrainSet, split.TestSet);
        }
        var options = new CnnTrainer.Options { Epochs = 2, Seed = Fixtures.Seed(1), ValidationFraction = 0 };
        using var model = ml.Deep().Cnn(options).Fit(train);
        var m = ml.MulticlassClassification.Evaluate(model.Transform(test));
        _out.WriteLine($"Fashion-MNIST subset CNN: micro {m.MicroAccuracy:F4}, macro {m.MacroAccuracy:F4}, log-loss {m.LogLoss:F4}; " +
                       $"epoch seconds {string.Join(", ", model.History.Epochs.Select(e => e.Seconds.ToString("F1")))}");
        // 6k images, 2 epochs: 0.840 measured; chance is 0.10 and a linear model on the full 60k reaches ~0.84.
        Assert.True(Fixtures.Quality("CnnTests.LearnsFashionMnistSubset: m.MicroAccuracy", m.MicroAccuracy) >= 0.80, $"accuracy {m.MicroAccuracy:F4}");   // 3 seeds: min 0.844, median 0.850
    }

    [Fact]
    public void AugmentationTrainsAndIsOffAtScoring()
    {
        var ml = new MLContext(seed: 1);
        var data = FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 500);
        var options = new CnnTrainer.Options { Epochs = 1, Seed = 1, Augmentation = new Augmentation { MaxShift = 2, HorizontalFlip = true } };
        using var model = ml.Deep().Cnn(options).Fit(data);
        Assert.Contains(model.Summary().Layers, l => l.Name == "input (image)");
        var s1 = ml.Data.CreateEnumerable<Fixtures.MulticlassPrediction>(model.Transform(data), false).Select(p => p.Score).ToList();
        var s2 = ml.Data.CreateEnumerable<Fixtures.MulticlassPrediction>(model.Transform(data), false).Select(p => p.Score).ToList();
        Assert.Equal(s1, s2);   // scoring is deterministic: no random shifts or flips
    }

    [Fact]
    public void BadShapesAndSpecsAreNamed()
    {
        var ml = new MLContext();
        var data = FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 50);
        var wrong = new CnnTrainer.Options { ImageShape = new ImageShape(1, 20, 20) };
        var ex = Assert.Throws<ArgumentException>(() => ml.Deep().Cnn(wrong).Fit(data));
        Assert.Contains("784 values, but ImageShape 1×20×20 needs 400", ex.Message);

        var shrinking = new CnnTrainer.Options
        {
            ConvBlocks =
            [
                new ConvBlock { Filters = 8, Kernel = 5, Padding = "valid", PoolSize = 2 },   // 28 → 24 → 12
                new ConvBlock { Filters = 8, Kernel = 5, Padding = "valid", PoolSize = 2 },   // 12 → 8 → 4
                new ConvBlock { Filters = 8, Kernel = 5, Padding = "valid", PoolSize = 2 },   // 4 < 5: does not fit
            ],
        };
        var spec = Assert.Throws<InvalidOperationException>(() => ml.Deep().Cnn(shrinking).Fit(data));
        Assert.Contains("conv block 3", spec.Message);
        Assert.Contains("below 1×1", spec.Message);

        var odd = new float[10 * 10 * 2];
        var rows = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 4).Select(i => new OddRow { Features = odd, Label = i % 2 == 0 }));
        ex = Assert.Throws<ArgumentException>(() => ml.Deep().Cnn(new CnnTrainer.Options()).Fit(rows));
        Assert.Contains("not a square grayscale or RGB image", ex.Message);
    }

    private sealed class OddRow
    {
        [VectorType(200)] public float[] Features { get; set; }
        public bool Label { get; set; }
    }

    [Fact]
    public void EndToEndFromPngFilesThroughSaveLoadAndPredictionEngine()
    {
        var ml = new MLContext(seed: 1);
        var (dir, rows) = WritePngs(400);
        var data = ml.Data.LoadFromEnumerable(rows);
        var split = ml.Data.TrainTestSplit(data, 0.25, seed: 1);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", "Category")
            .Append(ml.Transforms.LoadImages("Image", dir, "ImagePath"))
            .Append(ml.Transforms.ResizeImages("Image", 28, 28))
            .Append(ml.Transforms.ExtractPixels("Features", "Image", colorsToExtract: ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1f / 255))
            .Append(ml.Deep().Cnn(new CnnTrainer.Options { Epochs = 6, Seed = Fixtures.Seed(1), ImageShape = new ImageShape(1, 28, 28), ValidationFraction = 0 }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedCategory", "PredictedLabel"));
        var model = pipeline.Fit(split.TrainSet);
        var m = ml.MulticlassClassification.Evaluate(model.Transform(split.TestSet));
        _out.WriteLine($"PNG pipeline (300 train images, 6 epochs): micro accuracy {m.MicroAccuracy:F3}");
        Assert.True(Fixtures.Quality("CnnTests.EndToEndFromPngFilesThroughSaveLoadAndPredictionEngine: m.MicroAccuracy", m.MicroAccuracy) > 0.5, $"accuracy {m.MicroAccuracy}");   // 10 classes: chance is 0.1

        var path2 = Path.Combine(dir, "model.zip");
        ml.Model.Save(model, data.Schema, path2);
        var fresh = new MLContext();
        var loaded = fresh.Deep().LoadModel(path2, out _);
        var engine = fresh.Model.CreatePredictionEngine<ImageRow, ImagePrediction>(loaded);
        var expected = ml.Data.CreateEnumerable<ImagePrediction>(model.Transform(split.TestSet), false).ToList();
        var inputs = ml.Data.CreateEnumerable<ImageRow>(split.TestSet, false).ToList();
        for (int i = 0; i < 20; i++)
        {
            var p = engine.Predict(inputs[i]);
            Assert.Equal(expected[i].PredictedCategory, p.PredictedCategory);
            Assert.Contains(p.PredictedCategory, FashionMnist.ClassNames);
        }
    }

    [Fact]
    public void CnnFeaturesFeedLightGbmInTheSamePipeline()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 3000), 0.3, seed: 1);
        var cnn = new CnnTrainer.Options { Epochs = 2, Seed = Fixtures.Seed(1), DenseLayers = [64], ValidationFraction = 0 };
        var pipeline = ml.Deep().CnnFeaturizer(cnn, "CnnFeatures")
            .Append(ml.MulticlassClassification.Trainers.LightGbm(new Microsoft.ML.Trainers.LightGbm.LightGbmMulticlassTrainer.Options
            {
                LabelColumnName = "Label", FeatureColumnName = "CnnFeatures", NumberOfIterations = 30, NumberOfThreads = 1, Seed = Fixtures.Seed(1),
            }));
        var model = pipeline.Fit(split.TrainSet);
        var scored = model.Transform(split.TestSet);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 64), scored.Schema["CnnFeatures"].Type);
        var m = ml.MulticlassClassification.Evaluate(scored);
        _out.WriteLine($"CNN features → LightGBM: micro accuracy {m.MicroAccuracy:F4}");
        Assert.True(Fixtures.Quality("CnnTests.CnnFeaturesFeedLightGbmInTheSamePipeline: m.MicroAccuracy", m.MicroAccuracy) > 0.75, $"accuracy {m.MicroAccuracy}");

        var path = Path.Combine(Fixtures.TempDir(), "featurizer.zip");
        ml.Model.Save(model, split.TestSet.Schema, path);
        var loaded = new MLContext().Deep().LoadModel(path, out _);
        var before = scored.GetColumn<float[]>("CnnFeatures").Take(50).ToList();
        var after = loaded.Transform(split.TestSet).GetColumn<float[]>("CnnFeatures").Take(50).ToList();
        Assert.Equal(before, after);
        var featurizer = (DeepTransformer)model.First();
        Assert.Contains("featurizer", featurizer.ToString());
    }

    /// <summary>Writes the first <paramref name="count"/> Fashion-MNIST test images as PNG files (RGBA, gray).</summary>
    private static (string Dir, List<ImageRow> Rows) WritePngs(int count)
    {
        var dir = Fixtures.TempDir();
        var images = FashionMnist.Read(FashionMnist.FindDirectory("t10k"), "t10k", limit: count);
        var rows = new List<ImageRow>();
        for (int i = 0; i < images.Count; i++)
        {
            var path = Path.Combine(dir, $"img{i:D4}.png");
            var rgba = images[i].Pixels.SelectMany(p => new[] { p, p, p, (byte)255 }).ToArray();
            using (var img = MLImage.CreateFromPixels(28, 28, MLPixelFormat.Rgba32, rgba)) img.Save(path);
            rows.Add(new ImageRow { ImagePath = path, Category = FashionMnist.ClassNames[images[i].Label] });
        }
        return (dir, rows);
    }

    [Fact]
    public void TrainsOnAnMLImageColumnDirectly()
    {
        var ml = new MLContext(seed: 1);
        var (dir, rows) = WritePngs(400);
        var data = ml.Data.LoadFromEnumerable(rows);
        var split = ml.Data.TrainTestSplit(data, 0.25, seed: 1);
        var options = new CnnTrainer.Options { FeatureColumnName = "Image", ImageShape = new ImageShape(1, 28, 28), Epochs = 6, Seed = Fixtures.Seed(1), ValidationFraction = 0 };
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", "Category")
            .Append(ml.Transforms.LoadImages("Image", dir, "ImagePath"))
            .Append(ml.Deep().Cnn(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedCategory", "PredictedLabel"));
        var model = pipeline.Fit(split.TrainSet);
        var m = ml.MulticlassClassification.Evaluate(model.Transform(split.TestSet));
        _out.WriteLine($"MLImage column (300 train images, 6 epochs): micro accuracy {m.MicroAccuracy:F3}");
        Assert.True(Fixtures.Quality("CnnTests.TrainsOnAnMLImageColumnDirectly: m.MicroAccuracy", m.MicroAccuracy) > 0.5, $"accuracy {m.MicroAccuracy}");
        var engine = ml.Model.CreatePredictionEngine<ImageRow, ImagePrediction>(model);
        Assert.Contains(engine.Predict(rows[0]).PredictedCategory, FashionMnist.ClassNames);

        // An image of another size is named with its row and the fix.
        var big = Path.Combine(dir, "big.png");
        using (var img = MLImage.CreateFromPixels(30, 30, MLPixelFormat.Rgba32, new byte[30 * 30 * 4])) img.Save(big);
        var odd = ml.Data.LoadFromEnumerable(rows.Take(3).Append(new ImageRow { ImagePath = big, Category = rows[0].Category }));
        var ex = Assert.Throws<InvalidOperationException>(() => model.Transform(odd).GetColumn<uint>("PredictedLabel").ToArray());
        Assert.Contains("30×30 image in row 3", ex.Message);
        Assert.Contains("ResizeImages", ex.Message);
    }

    public sealed class ImageRow
    {
        public string ImagePath { get; set; }
        public string Category { get; set; }
    }

    public sealed class ImagePrediction
    {
        public string PredictedCategory { get; set; }
        public float[] Score { get; set; }
    }
}
