using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The core's vector labels are not recurrent-only: any family fits a multi-output regression target.</summary>
public class VectorLabelTests
{
    private readonly ITestOutputHelper _out;
    public VectorLabelTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void AnMlpForecastsThreeHoursWithAVectorLabel()
    {
        var ml = new MLContext(seed: 1);
        var windows = ml.Deep().SeriesWindows(SequenceData.SeattleTemps(ml), "Temp", lookBack: 24, horizon: 3);
        long n = windows.GetRowCount()!.Value, cut = (long)(n * 0.8);
        var (train, test) = (ml.Data.TakeRows(windows, cut), ml.Data.SkipRows(windows, cut));
        var trainer = ml.Deep().Mlp(new MlpTrainer.Options { HiddenLayers = [64], Epochs = 10, Seed = 1, NumberOfThreads = 1 });
        Assert.Equal(SchemaShape.Column.VectorKind.Vector, trainer.GetOutputSchema(Persistence.MlNetBridge.Shape(train.Schema)).Single(c => c.Name == "Score").Kind);
        using var model = trainer.Fit(train);
        var scored = model.Transform(test);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 3), scored.Schema["Score"].Type);
        double Rmse(string column) => Math.Sqrt(scored.GetColumn<float[]>(column).Zip(scored.GetColumn<float[]>("Label"))
            .SelectMany(p => p.First.Zip(p.Second, (a, b) => (double)(a - b) * (a - b))).Average());
        double mlp = Rmse("Score"), persistence = Rmse("LastValue");
        _out.WriteLine($"MLP, 3 hours ahead: RMSE {mlp:F3} vs persistence {persistence:F3}; validation RMSE {model.History.Epochs[^1].ValidationMetric:F3}");
        Assert.True(mlp < persistence, $"MLP {mlp:F3} vs persistence {persistence:F3}");
        Assert.Equal("rmse", model.History.Epochs[^1].MetricName);
    }

    [Fact]
    public void AVectorLabelIsRegressionOnly()
    {
        var ml = new MLContext(seed: 1);
        var windows = ml.Deep().SeriesWindows(SequenceData.SeattleTemps(ml), "Temp", lookBack: 4, horizon: 2);
        var options = new MlpTrainer.Options { Task = DeepTask.BinaryClassification, Epochs = 1 };
        var e = Assert.Throws<ArgumentException>(() => ml.Deep().Mlp(options).Fit(windows));
        Assert.Contains("'Label'", e.Message);
        Assert.Contains("vector", e.Message);
    }
}
