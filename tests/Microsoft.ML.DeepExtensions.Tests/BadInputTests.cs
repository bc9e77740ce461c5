using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>Bad input fails before any training, with a message that names the column and says what was expected.</summary>
public class BadInputTests
{
    private sealed class Row
    {
        [VectorType(3)] public float[] Features { get; set; }
        public bool Label { get; set; }
    }

    private sealed class RegressionRow
    {
        [VectorType(3)] public float[] Features { get; set; }
        public float Label { get; set; }
    }

    private sealed class TextRow
    {
        public string Features { get; set; }
        public string Label { get; set; }
    }

    private sealed class VarRow
    {
        public float[] Features { get; set; }
        public bool Label { get; set; }
    }

    private static IEnumerable<Row> Rows(int n, Func<int, float[]> features = null, Func<int, bool> label = null) =>
        Enumerable.Range(0, n).Select(i => new Row { Features = features?.Invoke(i) ?? [i % 7, i % 3, 1], Label = label?.Invoke(i) ?? i % 2 == 0 });

    /// <summary>A trainer that records whether any epoch ran.</summary>
    private static (MlpTrainer Trainer, Func<int> Epochs) Trainer(MLContext ml, MlpTrainer.Options options = null)
    {
        var trainer = ml.Deep().Mlp(options ?? Fixtures.QuickMlp(1));
        int epochs = 0;
        trainer.EpochCompleted += (_, _) => epochs++;
        return (trainer, () => epochs);
    }

    [Fact]
    public void MissingFeatureColumnIsNamed()
    {
        var ml = new MLContext();
        var (t, epochs) = Trainer(ml, new MlpTrainer.Options { FeatureColumnName = "Pixels" });
        var ex = Assert.Throws<ArgumentException>(() => t.Fit(ml.Data.LoadFromEnumerable(Rows(10))));
        Assert.Contains("Feature column 'Pixels' was not found", ex.Message);
        Assert.Contains("'Features'", ex.Message); // lists what is available
        Assert.Equal(0, epochs());
    }

    [Fact]
    public void MissingLabelColumnIsNamed()
    {
        var ml = new MLContext();
        var (t, _) = Trainer(ml, new MlpTrainer.Options { LabelColumnName = "Target" });
        var ex = Assert.Throws<ArgumentException>(() => t.Fit(ml.Data.LoadFromEnumerable(Rows(10))));
        Assert.Contains("Label column 'Target' was not found", ex.Message);
    }

    [Fact]
    public void WrongColumnTypesAreNamedWithWhatWasExpected()
    {
        var ml = new MLContext();
        var text = ml.Data.LoadFromEnumerable(new[] { new TextRow { Features = "a", Label = "b" } });
        var ex = Assert.Throws<ArgumentException>(() => Trainer(ml).Trainer.Fit(text));
        Assert.Contains("Feature column 'Features' must be a known-size vector of Single", ex.Message);
        Assert.Contains("String", ex.Message);

        var data = ml.Data.LoadFromEnumerable(new[] { new TextRow { Features = "1", Label = "yes" } });
        var converted = ml.Transforms.Conversion.ConvertType("Features", "Features", DataKind.Single).Fit(data).Transform(data);
        ex = Assert.Throws<ArgumentException>(() => Trainer(ml).Trainer.Fit(converted));
        Assert.Contains("Label column 'Label' must be Boolean", ex.Message);
        Assert.Contains("MapValueToKey", ex.Message);

        var variable = ml.Data.LoadFromEnumerable(new[] { new VarRow { Features = [1, 2], Label = true } });
        ex = Assert.Throws<ArgumentException>(() => Trainer(ml).Trainer.Fit(variable));
        Assert.Contains("known size", ex.Message);
    }

    [Fact]
    public void MulticlassNeedsAKeyLabel()
    {
        var ml = new MLContext();
        var o = Fixtures.QuickMlp(1);
        o.Task = DeepTask.MulticlassClassification;
        var ex = Assert.Throws<ArgumentException>(() => ml.Deep().Mlp(o).Fit(ml.Data.LoadFromEnumerable(Rows(10))));
        Assert.Contains("must be a Key type", ex.Message);
        var p = new PerceptronTrainer.Options { Task = DeepTask.Regression };
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 10).Select(i => new RegressionRow { Features = [i, 1, 2], Label = i }));
        ex = Assert.Throws<ArgumentException>(() => ml.Deep().Perceptron(p).Fit(data));
        Assert.Contains("does not support Regression", ex.Message);
    }

    [Fact]
    public void VectorSizeChangeAtScoringTimeIsNamed()
    {
        var ml = new MLContext();
        using var model = Trainer(ml).Trainer.Fit(ml.Data.LoadFromEnumerable(Rows(50)));
        var twoWide = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 3).Select(_ => new TwoRow { Features = [1, 2] }));
        var ex = Assert.Throws<ArgumentException>(() => model.Transform(twoWide));
        Assert.Contains("Feature column 'Features' has 2 values, but the model was trained on 3", ex.Message);
        Assert.Throws<ArgumentException>(() => model.GetRowToRowMapper(twoWide.Schema));
    }

    private sealed class TwoRow
    {
        [VectorType(2)] public float[] Features { get; set; }
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void NonFiniteFeaturesAreRejectedWithRowAndSlot(float bad)
    {
        var ml = new MLContext();
        var (t, epochs) = Trainer(ml);
        var data = ml.Data.LoadFromEnumerable(Rows(20, i => i == 13 ? [1, bad, 0] : [i, 1, 0]));
        var ex = Assert.Throws<InvalidOperationException>(() => t.Fit(data));
        Assert.Contains("Feature column 'Features' has a non-finite value", ex.Message);
        Assert.Contains("row 13, slot 1", ex.Message);
        Assert.Contains("ReplaceMissingValues", ex.Message);
        Assert.Equal(0, epochs());
    }

    [Fact]
    public void NonFiniteLabelsAreRejected()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 20).Select(i => new RegressionRow { Features = [i, 1, 2], Label = i == 4 ? float.NaN : i }));
        var ex = Assert.Throws<InvalidOperationException>(() => Trainer(ml).Trainer.Fit(data));
        Assert.Contains("Label column 'Label' has a non-finite or missing value in row 4", ex.Message);
    }

    [Fact]
    public void NonBinaryNumericLabelForBinaryTaskIsRejected()
    {
        var ml = new MLContext();
        var o = Fixtures.QuickMlp(1);
        o.Task = DeepTask.BinaryClassification;
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 20).Select(i => new RegressionRow { Features = [i, 1, 2], Label = i % 3 }));
        var ex = Assert.Throws<InvalidOperationException>(() => ml.Deep().Mlp(o).Fit(data));
        Assert.Contains("must hold 0 or 1", ex.Message);
    }

    [Fact]
    public void ALabelWithOneClassIsRejected()
    {
        var ml = new MLContext();
        var (t, epochs) = Trainer(ml);
        var ex = Assert.Throws<InvalidOperationException>(() => t.Fit(ml.Data.LoadFromEnumerable(Rows(30, label: _ => true))));
        Assert.Contains("Label column 'Label' has only one class", ex.Message);
        Assert.Equal(0, epochs());
    }

    [Fact]
    public void EmptyDataIsRejected()
    {
        var ml = new MLContext();
        var ex = Assert.Throws<InvalidOperationException>(() => Trainer(ml).Trainer.Fit(ml.Data.LoadFromEnumerable(Rows(0))));
        Assert.Contains("has no rows", ex.Message);
        Assert.Contains("'Features'", ex.Message);
    }

    [Fact]
    public void BadOptionsAreNamed()
    {
        var ml = new MLContext();
        var data = ml.Data.LoadFromEnumerable(Rows(10));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 0 }).Fit(data));
        Assert.Contains("Epochs", ex.Message);
        ex = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Deep().Mlp(new MlpTrainer.Options { ValidationFraction = 1 }).Fit(data));
        Assert.Contains("ValidationFraction", ex.Message);
        var spec = Assert.Throws<InvalidOperationException>(() => ml.Deep().Mlp(new MlpTrainer.Options { HiddenLayers = [8, 0] }).Fit(data));
        Assert.Contains("hidden layer 2", spec.Message);
        var early = new MlpTrainer.Options { EarlyStopping = new EarlyStoppingOptions { Metric = "rmse" } };
        Assert.Throws<ArgumentException>(() => ml.Deep().Mlp(early).Fit(data));
        var weights = new MlpTrainer.Options { ClassWeights = [1, 2, 3] };
        Assert.Contains("ClassWeights", Assert.Throws<ArgumentException>(() => ml.Deep().Mlp(weights).Fit(data)).Message);
    }

    [Fact]
    public void ANetworkTooLargeForMemoryIsRefusedBeforeAnyAllocation()
    {
        // The GitHub-issues case of issue 17: thousands of one-hot slots became thousands of FT-Transformer tokens, and
        // libtorch aborted the process asking for 34 GB. 6,000 features → 6,001 tokens: attention alone is ~4.6 GB per
        // layer for a batch of 128, well above 80 % of any test machine's memory once three layers train.
        var ml = new MLContext();
        var wide = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 16).Select(i => new WideRow { Features = Enumerable.Range(0, 6000).Select(j => (float)((i + j) % 5)).ToArray(), Label = i % 2 == 0 }));
        var options = new FtTransformerTrainer.Options { Epochs = 1, GroupOneHotSlots = false, MemoryLimitMegabytes = 16_000 };
        long tensors = TorchSharp.torch.Tensor.TotalCount;
        var ex = Assert.Throws<InsufficientMemoryException>(() => ml.Deep().FtTransformer(options).Fit(wide));
        Assert.Equal(tensors, TorchSharp.torch.Tensor.TotalCount);   // refused before the network or the data became tensors
        Assert.Contains("FtTransformerTrainer", ex.Message);
        Assert.Contains("GB", ex.Message);
        Assert.Contains("MemoryLimitMegabytes 16000", ex.Message);

        // The same estimate lets a small network through and names its own limit when asked for less.
        var small = ml.Data.LoadFromEnumerable(Rows(64));
        ex = Assert.Throws<InsufficientMemoryException>(() => ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 1, HiddenLayers = [4096, 4096], MemoryLimitMegabytes = 64 }).Fit(small));
        Assert.Contains("'dense1 (Linear", ex.Message);
        using var fine = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 1, MemoryLimitMegabytes = 64 }).Fit(small);
    }

    private sealed class WideRow
    {
        [VectorType(6000)] public float[] Features { get; set; }
        public bool Label { get; set; }
    }
}
