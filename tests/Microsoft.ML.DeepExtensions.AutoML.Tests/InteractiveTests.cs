using Microsoft.DotNet.Interactive.Formatting;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.AutoML;
using Microsoft.ML.DeepExtensions.Interactive;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The .NET Interactive formatters render real objects (a trained model's history and summary, optdigits images, a leaderboard).</summary>
public class InteractiveTests
{
    [Fact]
    public void Formatters_render_history_summary_images_and_leaderboard_as_html()
    {
        DeepFormatters.Register();
        DeepFormatters.Register();   // idempotent
        var ml = new MLContext(1);
        var digits = TabularData.Load(ml, TestData.Path("optdigits", "optdigits-train.csv"), "64");
        var data = digits.Featurizer.Fit(digits.Data).Transform(ml.Data.TakeRows(digits.Data, 1000));
        using var model = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 3, HiddenLayers = [32], NumberOfThreads = 1, Seed = 1 }).Fit(data);

        string history = model.History.ToDisplayString(HtmlFormatter.MimeType);
        Assert.Equal(2, history.Split("<svg").Length - 1);           // loss curves and validation accuracy
        Assert.Contains("train loss", history);
        Assert.Contains("validation loss", history);
        Assert.Contains("3 epochs", history);

        string summary = model.Summary().ToDisplayString(HtmlFormatter.MimeType);
        Assert.Contains("dense1", summary);
        Assert.Contains(model.Summary().TotalParameters.ToString("N0"), summary);

        // Images: the first 12 digits as PNGs (8×8 grayscale; the IHDR chunk says so).
        var pixels = ml.Data.CreateEnumerable<Row>(data, reuseRowObject: false).Take(12).Select(r => r.Features.Select(p => p / 16f).ToArray()).ToList();
        var grid = new ImageGrid(pixels, new ImageShape(1, 8, 8), pixels.Select((_, i) => $"#{i}").ToList(), columns: 6);
        string html = grid.ToDisplayString(HtmlFormatter.MimeType);
        Assert.Equal(12, html.Split("data:image/png;base64,").Length - 1);
        byte[] png = grid.Png(pixels[0]);
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, png[..4]);
        Assert.Equal(8, png[19]);   // IHDR width (big-endian, low byte)
        Assert.Equal(8, png[23]);   // IHDR height
        Assert.Throws<ArgumentException>(() => new ImageGrid([new float[63]], new ImageShape(1, 8, 8)));

        // A leaderboard renders with its table and both plots.
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = digits.Featurizer, Candidates = ["SDCA", "MLP"], Trials = 1, MaxEpochs = 2, NumberOfThreads = 1, LatencySamples = 20,
        }).Run(ml.Data.TakeRows(digits.Data, 1000));
        string board = result.ToDisplayString(HtmlFormatter.MimeType);
        Assert.Contains("<table class=\"lb\"", board);
        Assert.Equal(2, board.Split("<svg").Length - 1);
        Assert.Contains("MLP", board);
        Assert.Contains("SDCA", board);
    }

    private sealed class Row
    {
        [VectorType(64)] public float[] Features { get; set; }
    }
}
