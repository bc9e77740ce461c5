using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Models;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The recurrent family (RNN/LSTM/GRU): forecasting, the series windows, spec checks, save/load.</summary>
public class LstmTests
{
    private readonly ITestOutputHelper _out;
    public LstmTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void SeriesWindowsHoldLookBackLabelAndPersistence()
    {
        var ml = new MLContext(seed: 1);
        var temps = ml.Data.CreateEnumerable<SequenceData.TempRow>(SequenceData.SeattleTemps(ml), reuseRowObject: false).Select(r => r.Temp).ToArray();
        var windows = ml.Deep().SeriesWindows(SequenceData.SeattleTemps(ml), "Temp", lookBack: 24, horizon: 3, stride: 5);
        var rows = windows.Preview(maxRows: 3).RowView;
        Assert.Equal((temps.Length - 27) / 5 + 1, windows.GetRowCount());
        var second = rows[1].Values.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(temps.Skip(5).Take(24), ((VBuffer<float>)second["Features"]).DenseValues());
        Assert.Equal(temps.Skip(29).Take(3), ((VBuffer<float>)second["Label"]).DenseValues());
        Assert.Equal(Enumerable.Repeat(temps[28], 3), ((VBuffer<float>)second["LastValue"]).DenseValues());
        var ex = Assert.Throws<ArgumentException>(() => ml.Deep().SeriesWindows(SequenceData.SeattleTemps(ml), "Date", 24));
        Assert.Contains("'Date'", ex.Message);
    }

    [Fact]
    public void ForecastsSeattleTemperatureBetterThanPersistence()
    {
        // Next hour from the previous 24 h; train on the first 80 % of the year, test on the last 20 % (Oct–Dec).
        var ml = new MLContext(seed: 1);
        var (train, test, _) = SequenceData.TempWindows(ml);
        var options = new LstmTrainer.Options { Epochs = 8, HiddenSize = 32, Seed = 1, NumberOfThreads = 1, ValidationFraction = 0 };
        using var model = ml.Deep().Lstm(options).Fit(train);
        var lstm = ml.Regression.Evaluate(model.Transform(test));
        var persistence = ml.Regression.Evaluate(test, "Label", "LastValue");
        double ratio = lstm.RootMeanSquaredError / persistence.RootMeanSquaredError;
        _out.WriteLine($"Seattle next-hour: LSTM RMSE {lstm.RootMeanSquaredError:F3} °F, persistence {persistence.RootMeanSquaredError:F3} °F, ratio {ratio:F3}; " +
                       $"train loss {string.Join(", ", model.History.Epochs.Select(e => e.TrainLoss.ToString("F3")))}");
        Assert.True(ratio <= 0.9, $"LSTM RMSE {lstm.RootMeanSquaredError:F3} is not 10 % below persistence {persistence.RootMeanSquaredError:F3}");
    }
}
