using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Models;
using TorchSharp;
using Xunit.Abstractions;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>
/// Every family through the checks ML.NET's own <c>TestEstimatorCore</c> makes: the estimator's output schema agrees
/// with the fitted model's, save/load scores identically, a PredictionEngine agrees with Transform, live tensors stay
/// flat over 1,000 predictions and over another fit, and a missing feature column gets the named-column error.
/// </summary>
public sealed class ConformanceTests(ITestOutputHelper output)
{
    public sealed class FeatureRow
    {
        [VectorType(64)] public float[] Features { get; set; } = [];
    }

    public sealed class ScalarScore
    {
        public float Score { get; set; }
    }

    public sealed class VectorScore
    {
        public float[] Score { get; set; } = [];
    }

    /// <summary>One family: its estimator (on a feature column name), its training data, and how many rows to score.</summary>
    private sealed record Case(string Family, Func<MLContext, string, IEstimator<ITransformer>> Estimator, Func<MLContext, IDataView> Data, bool VectorScore, bool Text = false);

    private static IEstimator<ITransformer> Sms(MLContext ml, IEstimator<ITransformer> trainer) => TestData.SmsTokenizer(ml).Append(trainer);

    private static IDataView SmsSubset(MLContext ml) => ml.Data.TakeRows(TestData.Sms(ml), 400);

    private static readonly Dictionary<string, Case> Cases = new Case[]
    {
        new("Perceptron", (ml, f) => ml.Deep().Perceptron(featureColumnName: f, epochs: 3), ml => Fixtures.DigitsBinary(ml, "train"), false),
        new("MLP", (ml, f) => ml.Deep().Mlp(new MlpTrainer.Options { FeatureColumnName = f, Epochs = 2, Seed = 1, HiddenLayers = [32] }), ml => Fixtures.Digits(ml).Train, true),
        new("CNN", (ml, f) => ml.Deep().Cnn(new CnnTrainer.Options { FeatureColumnName = f, ImageShape = new ImageShape(1, 8, 8), Epochs = 1, Seed = 1, ConvBlocks = [new ConvBlock { Filters = 8 }], DenseLayers = [16] }),
            ml => Fixtures.Digits(ml).Train, true),
        new("ViT", (ml, f) => ml.Deep().Vit(new VitTrainer.Options { FeatureColumnName = f, ImageShape = new ImageShape(1, 8, 8), PatchSize = 2, Epochs = 1, Seed = 1, Dimension = 8, Heads = 2, Layers = 1, FeedForwardSize = 16 }),
            ml => Fixtures.Digits(ml).Train, true),
        new("LSTM", (ml, f) => Sms(ml, ml.Deep().Lstm(new LstmTrainer.Options { FeatureColumnName = f == "Features" ? "Tokens" : f, Epochs = 1, Seed = 1, HiddenSize = 16, EmbeddingSize = 16, MaxSequenceLength = 40 })),
            SmsSubset, false, Text: true),
        new("Transformer", (ml, f) => Sms(ml, ml.Deep().Transformer(new TransformerTrainer.Options { FeatureColumnName = f == "Features" ? "Tokens" : f, Epochs = 1, Seed = 1, Dimension = 16, Heads = 2, Layers = 1, FeedForwardSize = 32, MaxSequenceLength = 40 })),
            SmsSubset, false, Text: true),
        new("FT-Transformer", (ml, f) => ml.Deep().FtTransformer(new FtTransformerTrainer.Options { FeatureColumnName = f, Epochs = 1, Seed = 1, Dimension = 8, Heads = 2, Layers = 1, FeedForwardSize = 16 }),
            ml => Fixtures.DigitsBinary(ml, "train"), false),
        new("GAN", (ml, f) => ml.Deep().Gan(new GanTrainer.Options { FeatureColumnName = f, Epochs = 1, Seed = 1, GeneratorLayers = [32], DiscriminatorLayers = [32] }),
            ml => Fixtures.DigitsBinary(ml, "train"), false),
    }.ToDictionary(c => c.Family);

    public static TheoryData<string> Families => new(Cases.Keys);

    public sealed class SmsInput
    {
        public string Class { get; set; } = "";
        public string Text { get; set; } = "";
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void EveryFamilyBehavesLikeAnMlNetEstimator(string family)
    {
        var c = Cases[family];
        var ml = new MLContext(seed: 1);
        var data = ml.Data.Cache(c.Data(ml));
        var estimator = c.Estimator(ml, "Features");

        // 1. The estimator's output shape agrees with the fitted model's schema, column by column.
        var shape = estimator.GetOutputSchema(ShapeOf(data.Schema));
        var model = estimator.Fit(data);
        var schema = model.GetOutputSchema(data.Schema);
        foreach (var col in shape)
        {
            var actual = schema.GetColumnOrNull(col.Name);
            Assert.True(actual is not null, $"{family}: GetOutputSchema promises '{col.Name}', the model has no such column");
            var type = actual!.Value.Type;
            Assert.Equal(col.IsKey, type is KeyDataViewType || type is VectorDataViewType { ItemType: KeyDataViewType });
            Assert.Equal(col.Kind == SchemaShape.Column.VectorKind.Scalar, type is not VectorDataViewType);
            Assert.Equal(col.ItemType.RawType, (type is VectorDataViewType v ? v.ItemType : type).RawType);
        }
        Assert.Contains(shape, col => col.Name == "Score");

        // 2. Save/load in a fresh context scores identically.
        var scores = Scores(model.Transform(data), c.VectorScore);
        var path = Path.Combine(Fixtures.TempDir(), "model.zip");
        ml.Model.Save(model, data.Schema, path);
        var fresh = new MLContext();
        fresh.Deep();
        var loaded = fresh.Model.Load(path, out _);
        Assert.Equal(scores, Scores(loaded.Transform(data), c.VectorScore));

        // 3. A PredictionEngine agrees with Transform; 1,000 predictions leave no live tensor behind.
        var rows = c.Text
            ? ml.Data.CreateEnumerable<SmsInput>(data, false).Take(50).Select(r => (object)r).ToArray()
            : ml.Data.CreateEnumerable<FeatureRow>(data, false).Take(50).Select(r => (object)r).ToArray();
        var predict = Engine(ml, model, c);
        for (int i = 0; i < rows.Length; i++)
            Assert.True(Close(scores[i], predict(rows[i])), $"{family}: PredictionEngine row {i} differs from Transform");
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = torch.Tensor.TotalCount;
        for (int i = 0; i < 1000; i++) predict(rows[i % rows.Length]);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(before, torch.Tensor.TotalCount);

        // 4. Another fit and dispose adds nothing but TorchSharp's counting artifact (see ResourceTests): at most one count
        //    per parameter or buffer the network was built with (how many depends on how a module creates them), never
        //    per batch or per row.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        before = torch.Tensor.TotalCount;
        var again = estimator.Fit(data);
        var network = Network(again);
        int parameters = network.parameters().Count() + network.buffers().Count();
        (again as IDisposable)?.Dispose();
        foreach (var t in (again as TransformerChain<ITransformer>)?.OfType<IDisposable>() ?? []) t.Dispose();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        output.WriteLine($"{family}: {scores.Length} rows scored, tensors before refit {before}, after {torch.Tensor.TotalCount}, parameters and buffers {parameters}");
        long growth = torch.Tensor.TotalCount - before;
        Assert.True(growth >= 0 && growth <= parameters, $"{family}: {growth} live tensors more after a fit and dispose; at most {parameters} (parameters and buffers) expected");

        // 5. A missing feature column: the named-column error, before any training.
        var missing = Assert.Throws<ArgumentException>(() => c.Estimator(ml, "NoSuchColumn").Fit(data));
        Assert.Contains("'NoSuchColumn'", missing.Message);
    }

    /// <summary>ML.NET's own SchemaShape.Create (internal; ML.NET's tests reach it as a friend assembly).</summary>
    private static SchemaShape ShapeOf(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static, [typeof(DataViewSchema)])!
            .Invoke(null, [schema])!;

    private static torch.nn.Module Network(ITransformer model)
    {
        var last = model is TransformerChain<ITransformer> chain ? chain.LastTransformer : model;
        return last switch
        {
            DeepTransformer d => d.Network,
            GanTransformer g => g.Network,
            _ => throw new InvalidOperationException($"not a deep model: {last}"),
        };
    }

    private static Func<object, float[]> Engine(MLContext ml, ITransformer model, Case c)
    {
        if (c.Text)
        {
            var engine = ml.Model.CreatePredictionEngine<SmsInput, ScalarScore>(model);
            return row => [engine.Predict((SmsInput)row).Score];
        }
        if (c.VectorScore)
        {
            var engine = ml.Model.CreatePredictionEngine<FeatureRow, VectorScore>(model);
            return row => engine.Predict((FeatureRow)row).Score.ToArray();
        }
        var scalar = ml.Model.CreatePredictionEngine<FeatureRow, ScalarScore>(model);
        return row => [scalar.Predict((FeatureRow)row).Score];
    }

    private static float[][] Scores(IDataView scored, bool vector) => vector
        ? scored.GetColumn<float[]>("Score").ToArray()
        : scored.GetColumn<float>("Score").Select(s => new[] { s }).ToArray();

    /// <summary>Single-row and batched kernels may differ in the last bits.</summary>
    private static bool Close(float[] a, float[] b) => a.Length == b.Length && a.Zip(b).All(p => Math.Abs(p.First - p.Second) <= 1e-4f * (1 + Math.Abs(p.First)));

    /// <summary>
    /// ML.NET's permutation feature importance runs on our models like on LightGBM's: on Adult, the MLP's most important
    /// features are the ones every study of this data set finds (marital status / relationship, capital gain, education, age).
    /// </summary>
    [Fact]
    public void PermutationFeatureImportanceFindsTheMeaningfulAdultFeatures()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(ml.Data.TakeRows(TestData.Adult(ml), 12000), testFraction: 0.25, seed: 1);
        var featurizer = TestData.AdultFeaturizer(ml).Fit(split.TrainSet);
        var train = featurizer.Transform(split.TrainSet);
        var test = ml.Data.Cache(featurizer.Transform(split.TestSet));
        using var mlp = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 4, Seed = Fixtures.Seed(1), NumberOfThreads = 1 }).Fit(train);
        var pfi = ml.BinaryClassification.PermutationFeatureImportance(mlp, test, permutationCount: 1);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        test.Schema["Features"].GetSlotNames(ref slots);
        var names = slots.DenseValues().Select(s => s.ToString()).ToArray();
        Assert.Equal(names.Length, pfi.Length);

        // One score per original column: the largest AUC drop over its slots.
        var byColumn = names.Select((n, i) => (Column: n.Split('.')[0], Drop: -pfi[i].AreaUnderRocCurve.Mean))
            .GroupBy(x => x.Column).Select(g => (g.Key, Drop: g.Max(x => x.Drop))).OrderByDescending(x => x.Drop).ToArray();
        foreach (var (column, drop) in byColumn) output.WriteLine($"{column,-14} AUC drop {drop:F4}");
        var top = byColumn.Take(4).Select(x => x.Key).ToArray();
        Assert.True(top.Intersect(["MaritalStatus", "Relationship"]).Any(), $"top features: {string.Join(", ", top)}");
        Assert.True(top.Intersect(["CapitalGain", "EducationNum", "Education", "Age"]).Any(), $"top features: {string.Join(", ", top)}");
        Assert.True(Fixtures.Quality("ConformanceTests.PermutationFeatureImportanceFindsTheMeaningfulAdultFeatures: byColumn[0].Drop", byColumn[0].Drop) > 0.01, $"the most important feature moves AUC by only {byColumn[0].Drop:F4}");
        // Slots that are never set in the test data cannot matter.
        Assert.Contains(byColumn, x => Math.Abs(x.Drop) < 1e-3);
    }
}
