using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Models;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The transformer family: FT-Transformer on tabular data, the text transformer on token sequences, attention weights.</summary>
public class TransformerTests
{
    private readonly ITestOutputHelper _out;
    public TransformerTests(ITestOutputHelper output) => _out = output;

    private static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), out int v) && v > 0 ? v : fallback;

    [Fact]
    public void FtTransformerTokensFollowTheOneHotSlotNames()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.AdultFeaturizer(ml).Fit(TestData.Adult(ml)).Transform(ml.Data.TakeRows(TestData.Adult(ml), 400));
        using var model = ml.Deep().FtTransformer(new FtTransformerTrainer.Options { Epochs = 1, Seed = 1, Dimension = 16, Heads = 2, Layers = 1 }).Fit(data);
        var spec = Assert.IsType<FtTransformerSpec>(model.Spec);
        // 6 numeric columns → 6 numeric tokens; 8 one-hot columns → 8 tokens; + CLS.
        Assert.Equal(["[CLS]", .. TestData.AdultNumeric, .. TestData.AdultCategorical], spec.TokenNames());
        int width = ((VectorDataViewType)data.Schema["Features"].Type).Size;
        Assert.Equal(width, spec.Tokens.Sum(t => t.Length));
        Assert.Equal(model.Network.Body.parameters().Sum(p => p.numel()), model.Summary().TotalParameters);
        _out.WriteLine(model.Summary().ToString());
    }

    [Fact]
    public void FtTransformerIsCloseToLightGbmOnAdult()
    {
        // Same split, same featurisation (OneHotEncoding → Concatenate) for both. CI size: DEEPEXT_ADULT_ROWS rows
        // (default 8,000) and DEEPEXT_FT_EPOCHS epochs (default 8); the full-size run sets DEEPEXT_ADULT_ROWS=32561.
        int rows = EnvInt("DEEPEXT_ADULT_ROWS", 8000), epochs = EnvInt("DEEPEXT_FT_EPOCHS", 8);
        var ml = new MLContext(seed: 1);
        var all = ml.Data.TakeRows(ml.Data.ShuffleRows(TestData.Adult(ml), seed: 1), rows);
        var split = ml.Data.TrainTestSplit(all, testFraction: 0.2, seed: 1);
        var featurizer = TestData.AdultFeaturizer(ml).Fit(split.TrainSet);
        var train = ml.Data.Cache(featurizer.Transform(split.TrainSet));
        var test = featurizer.Transform(split.TestSet);

        var gbm = ml.BinaryClassification.Trainers.LightGbm().Fit(train);
        var gbmMetrics = ml.BinaryClassification.Evaluate(gbm.Transform(test));

        var options = new FtTransformerTrainer.Options { Epochs = epochs, Seed = 1, NumberOfThreads = 1, ValidationFraction = 0 };
        using var ft = ml.Deep().FtTransformer(options).Fit(train);
        var ftMetrics = ml.BinaryClassification.Evaluate(ft.Transform(test));
        _out.WriteLine($"Adult ({rows} rows, 80/20 split): LightGBM accuracy {gbmMetrics.Accuracy:F4} AUC {gbmMetrics.AreaUnderRocCurve:F4}; " +
                       $"FT-Transformer ({epochs} epochs) accuracy {ftMetrics.Accuracy:F4} AUC {ftMetrics.AreaUnderRocCurve:F4}; " +
                       $"epoch seconds {string.Join(", ", ft.History.Epochs.Select(e => e.Seconds.ToString("F1")))}");
        Assert.True(ftMetrics.Accuracy >= gbmMetrics.Accuracy - 0.015,
            $"FT-Transformer {ftMetrics.Accuracy:F4} is more than 1.5 points below LightGBM {gbmMetrics.Accuracy:F4}");
    }

    private static FtTransformerTrainer.Options QuickFt(int epochs = 2) =>
        new() { Epochs = epochs, Seed = Fixtures.Seed(2), NumberOfThreads = 1, Dimension = 16, Heads = 2, Layers = 1, FeedForwardSize = 32, ValidationFraction = 0 };

    [Fact]
    public void FtTransformerDoesMulticlassAndRegressionThroughTheSharedCore()
    {
        var ml = new MLContext(seed: 1);
        // optdigits: 64 unnamed numeric slots → 64 numeric tokens + CLS.
        var (train, test) = Fixtures.Digits(ml);
        var options = QuickFt(3);
        (options.BatchSize, options.LearningRate) = (32, 2e-3);   // 3,823 rows: enough steps in 3 epochs
        using var multi = ml.Deep().FtTransformer(options).Fit(train);
        Assert.Equal(DeepTask.MulticlassClassification, multi.Task);
        Assert.Equal(65, ((FtTransformerSpec)multi.Spec).TokenNames().Length);
        var mm = ml.MulticlassClassification.Evaluate(multi.Transform(test));
        _out.WriteLine($"optdigits FT-Transformer (3 epochs, d=16): micro accuracy {mm.MicroAccuracy:F4}");
        Assert.True(Fixtures.Quality("TransformerTests.FtTransformerDoesMulticlassAndRegressionThroughTheSharedCore: mm.MicroAccuracy", mm.MicroAccuracy) > 0.75, $"accuracy {mm.MicroAccuracy:F4}");   // 0.814 measured (3 short epochs, d = 16); chance is 0.10

        using var reg = ml.Deep().FtTransformer(options).Fit(Fixtures.DigitsRegression(ml, "train"));
        var rm = ml.Regression.Evaluate(reg.Transform(Fixtures.DigitsRegression(ml, "test")));
        _out.WriteLine($"optdigits digit value regression: RMSE {rm.RootMeanSquaredError:F3}, R² {rm.RSquared:F3}");
        Assert.True(Fixtures.Quality("TransformerTests.FtTransformerDoesMulticlassAndRegressionThroughTheSharedCore: rm.RSquared", rm.RSquared) > 0.45, $"R² {rm.RSquared:F3}");   // predicting the mean gives 0; 3 seeds: 0.558, 0.577, 0.641
    }

    [Fact]
    public void SavedAdultChainPredictsTheSameInAFreshContext()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(TestData.Adult(ml), 2000);
        var model = TestData.AdultFeaturizer(ml).Append(ml.Deep().FtTransformer(QuickFt(2))).Fit(data);
        var before = model.Transform(data).GetColumn<float>("Probability").ToArray();
        var path = Path.Combine(Fixtures.TempDir(), "adult.zip");
        ml.Model.Save(model, data.Schema, path);

        var fresh = new MLContext();
        fresh.Deep();
        var loaded = fresh.Model.Load(path, out _);
        Assert.Equal(before, loaded.Transform(data).GetColumn<float>("Probability").ToArray());
        var engine = fresh.Model.CreatePredictionEngine<TestData.AdultRow, Fixtures.BinaryPrediction>(loaded);
        var row = fresh.Data.CreateEnumerable<TestData.AdultRow>(data, false).First();
        Assert.Equal(before[0], engine.Predict(row).Probability, 1e-5);
        // The token groups and the attention survive the round trip.
        var chain = ((IEnumerable<ITransformer>)loaded).ToList();
        IDataView features = data;
        foreach (var t in chain.Take(chain.Count - 1)) features = t.Transform(features);
        var maps = ((DeepTransformer)chain[^1]).AttentionWeights(features, maxRows: 2);
        Assert.Equal(["[CLS]", .. TestData.AdultNumeric, .. TestData.AdultCategorical], maps[0].Tokens);
    }

    // ---- text transformer (token sequences) ----

    private sealed class Message
    {
        public string Class { get; set; } = "ham";
        public string Text { get; set; } = "";
    }

    private sealed class SpamPrediction
    {
        public bool PredictedLabel { get; set; }
        public float Score { get; set; }
        public float Probability { get; set; }
    }

    private static (ITransformer Tokenizer, IDataView Train, IDataView Test) Sms(MLContext ml)
    {
        var split = ml.Data.TrainTestSplit(TestData.Sms(ml), testFraction: 0.2, seed: 3);
        // As TestData.SmsTokenizer, but without punctuation ("free!" and "free" are one word).
        var tokenizer = ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, "Class")
            .Append(ml.Transforms.Text.NormalizeText("Normalized", "Text", keepPunctuations: false))
            .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
            .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"))
            .Fit(split.TrainSet);
        return (tokenizer, ml.Data.Cache(tokenizer.Transform(split.TrainSet)), tokenizer.Transform(split.TestSet));
    }

    private static TransformerTrainer.Options QuickText(int epochs = 2) => new()
    {
        FeatureColumnName = "Tokens", Epochs = epochs, Seed = Fixtures.Seed(3), NumberOfThreads = 1, ValidationFraction = 0,
        Dimension = 32, Heads = 2, Layers = 1, FeedForwardSize = 64, MaxSequenceLength = 48,
    };

    [Fact]
    public void TransformerLearnsSmsSpamFromScratch()
    {
        // The full SMS Spam Collection, 80/20 split (4,444 training messages), default architecture and schedule
        // (8 epochs). Measured 0.9832; the issue's bar is 0.98.
        var ml = new MLContext(seed: 1);
        var (_, train, test) = Sms(ml);
        var options = new TransformerTrainer.Options { FeatureColumnName = "Tokens", Seed = Fixtures.Seed(1), NumberOfThreads = 1, ValidationFraction = 0 };
        using var model = ml.Deep().Transformer(options).Fit(train);
        var m = ml.BinaryClassification.Evaluate(model.Transform(test));
        _out.WriteLine($"SMS spam transformer ({options.Epochs} epochs): accuracy {m.Accuracy:F4}, F1 {m.F1Score:F4}, AUC {m.AreaUnderRocCurve:F4}; " +
                       $"epoch seconds {string.Join(", ", model.History.Epochs.Select(e => e.Seconds.ToString("F1")))}; " +
                       $"learning rates {string.Join(", ", model.History.Epochs.Select(e => e.LearningRate.ToString("G2")))}");
        Assert.True(Fixtures.Quality("TransformerTests.TransformerLearnsSmsSpamFromScratch: m.Accuracy", m.Accuracy) >= 0.97, $"accuracy {m.Accuracy:F4}");   // 3 seeds: min 0.983
        var lr = model.History.Epochs.Select(e => e.LearningRate).ToArray();
        Assert.True(lr[0] < lr[1] && lr[^1] < lr[1], "warm-up then decay");
    }

    [Theory]
    [InlineData(SequencePooling.Cls, PositionalEncoding.Sinusoidal, LayerNormPosition.Pre)]
    [InlineData(SequencePooling.Mean, PositionalEncoding.Learned, LayerNormPosition.Post)]
    public void PaddingNeverChangesAScore(SequencePooling pooling, PositionalEncoding positions, LayerNormPosition norm)
    {
        var ml = new MLContext(seed: 1);
        var (tokenizer, train, _) = Sms(ml);
        var options = QuickText(1);
        (options.Pooling, options.Positions, options.LayerNorm) = (pooling, positions, norm);
        var model = tokenizer.Append(ml.Deep().Transformer(options).Fit(ml.Data.TakeRows(train, 1500)));
        var engine = ml.Model.CreatePredictionEngine<Message, SpamPrediction>(model);
        float alone = engine.Predict(new Message { Text = "free prize call now" }).Score;
        var batch = ml.Data.LoadFromEnumerable(new[]
        {
            new Message { Text = string.Join(' ', Enumerable.Repeat("meet me at the station later tonight", 5)) },
            new Message { Text = "free prize call now" },
        });
        float[] batched = model.Transform(batch).GetColumn<float>("Score").ToArray();
        Assert.Equal(alone, batched[1], 1e-4);
        Assert.NotEqual(batched[0], batched[1]);
    }

    [Fact]
    public void SavedTextChainScoresRawTextInAFreshContext()
    {
        var ml = new MLContext(seed: 1);
        var (tokenizer, train, test) = Sms(ml);
        var model = tokenizer.Append(ml.Deep().Transformer(QuickText(2)).Fit(ml.Data.TakeRows(train, 2000)));
        var before = model.Transform(TestData.Sms(ml)).GetColumn<float>("Score").Take(50).ToArray();
        var path = Path.Combine(Fixtures.TempDir(), "text.zip");
        ml.Model.Save(model, TestData.Sms(ml).Schema, path);

        var fresh = new MLContext();
        fresh.Deep();
        var loaded = fresh.Model.Load(path, out _);
        var after = loaded.Transform(TestData.Sms(fresh)).GetColumn<float>("Score").Take(50).ToArray();
        Assert.Equal(before, after);
        var engine = fresh.Model.CreatePredictionEngine<Message, SpamPrediction>(loaded);
        var spam = engine.Predict(new Message { Text = "WINNER!! You have won a free prize. Call now to claim your cash reward" });
        var ham = engine.Predict(new Message { Text = "ok see you at home later, I will bring dinner" });
        Assert.True(spam.Probability > ham.Probability, $"spam {spam.Probability:F3} vs ham {ham.Probability:F3}");
        // Evaluators read the standard columns.
        var m = fresh.BinaryClassification.Evaluate(loaded.Transform(TestData.Sms(fresh)));
        Assert.True(Fixtures.Quality("TransformerTests.SavedTextChainScoresRawTextInAFreshContext: m.Accuracy", m.Accuracy) > 0.9, $"accuracy {m.Accuracy:F4}");
    }

    [Fact]
    public void EmptyAndOverLongMessages()
    {
        var ml = new MLContext(seed: 1);
        var (tokenizer, train, _) = Sms(ml);
        var small = ml.Data.TakeRows(train, 800);
        var model = tokenizer.Append(ml.Deep().Transformer(QuickText(1)).Fit(small));
        var engine = ml.Model.CreatePredictionEngine<Message, SpamPrediction>(model);
        // An empty message (no tokens: read as one unknown token, never all padding) scores finitely.
        var empty = engine.Predict(new Message { Text = "" });
        Assert.True(float.IsFinite(empty.Score) && float.IsFinite(empty.Probability));
        // Longer than MaxSequenceLength: truncated by default ...
        var longText = string.Join(' ', Enumerable.Repeat("call now", 200));
        Assert.True(float.IsFinite(engine.Predict(new Message { Text = longText }).Score));
        // ... or rejected naming the column, when asked.
        var strict = QuickText(1);
        strict.MaxSequenceLength = 8;
        strict.SequenceOverflow = SequenceOverflow.Error;
        var error = Assert.Throws<InvalidOperationException>(() => ml.Deep().Transformer(strict).Fit(small));
        Assert.Contains("'Tokens'", error.Message);
        Assert.Contains("maximum is 8", error.Message);
    }

    [Fact]
    public void BadInputIsNamedBeforeTraining()
    {
        var ml = new MLContext(seed: 1);
        var (_, train, _) = Sms(ml);
        // The text transformer on a float vector, the FT-Transformer on token keys: the column is named.
        var digits = Fixtures.DigitsBinary(ml, "test");
        var e1 = Assert.Throws<ArgumentException>(() => ml.Deep().Transformer(featureColumnName: "Features").Fit(digits));
        Assert.Contains("'Features' must be a token sequence", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => ml.Deep().FtTransformer(featureColumnName: "Tokens").Fit(train));
        Assert.Contains("'Tokens'", e2.Message);
        var gap = QuickFt(1);
        gap.Tokens = [new FeatureToken("first", 0, 10), new FeatureToken("rest", 11, 53)];
        var e4 = Assert.Throws<InvalidOperationException>(() => ml.Deep().FtTransformer(gap).Fit(digits));
        Assert.Contains("slot 10", e4.Message);
        var heads = new TransformerTrainer.Options { FeatureColumnName = "Tokens", Dimension = 30, Heads = 4 };
        var e3 = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Deep().Transformer(heads).Fit(train));
        Assert.Contains("Heads", e3.Message);
    }

    [Fact]
    public void AttentionWeightsAreDistributionsOverTheRealTokens()
    {
        var ml = new MLContext(seed: 1);
        var (tokenizer, train, _) = Sms(ml);
        using var fitted = ml.Deep().Transformer(QuickText(1)).Fit(ml.Data.TakeRows(train, 800));
        var input = tokenizer.Transform(ml.Data.LoadFromEnumerable(new[]
        {
            new Message { Text = "free entry to win cash" },
            new Message { Text = "see you soon" },
        }));
        Assert.Equal(fitted.Network.Body.parameters().Sum(p => p.numel()), fitted.Summary().TotalParameters);
        var maps = fitted.AttentionWeights(input, layer: 0);
        Assert.Equal(2, maps.Count);
        Assert.Equal(["[CLS]", "free", "entry", "to", "win", "cash"], maps[0].Tokens);
        Assert.Equal(["[CLS]", "see", "you", "soon"], maps[1].Tokens);   // padding is not a token
        Assert.Equal(2, maps[0].Heads.Length);
        foreach (var map in maps)
            foreach (var head in map.Heads.Append(map.Mean))
                for (int i = 0; i < map.Tokens.Length; i++)
                    Assert.Equal(1.0, Enumerable.Range(0, map.Tokens.Length).Sum(j => (double)head[i, j]), 1e-4);
        Assert.Throws<ArgumentOutOfRangeException>(() => fitted.AttentionWeights(input, layer: 3));
        using var mlp = ml.Deep().Mlp(Fixtures.QuickMlp(1)).Fit(Fixtures.DigitsBinary(ml, "test"));
        Assert.Throws<NotSupportedException>(() => mlp.AttentionWeights(Fixtures.DigitsBinary(ml, "test")));
    }
}
