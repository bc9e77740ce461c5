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
}
