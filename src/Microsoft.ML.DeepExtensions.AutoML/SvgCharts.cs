using OxyPlot;
using OxyPlot.Axes;
using OxyPlot.Legends;
using OxyPlot.Series;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>
/// Self-contained SVG charts for reports and notebooks (no scripts, no network), drawn by OxyPlot's SVG exporter: scatter
/// plots and line charts. A series may carry its colour, so one candidate looks the same in every chart of a report.
/// </summary>
public static class SvgCharts
{
    /// <summary>The colours series take in order when they do not name one (the Category10 palette).</summary>
    public static IReadOnlyList<string> Palette { get; } = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    /// <summary>A named series of (x, y) points.</summary>
    /// <param name="Name">Legend text.</param>
    /// <param name="Points">The points, in drawing order.</param>
    /// <param name="Color">Its colour as #rrggbb; null takes the next one of <see cref="Palette"/>.</param>
    public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points, string? Color = null);

    /// <summary>A scatter plot: one marker per point, labelled by its series; <paramref name="logX"/> for a log10 x-axis.</summary>
    public static string Scatter(string title, string xLabel, string yLabel, IReadOnlyList<Series> series, bool logX = false) =>
        Chart(title, xLabel, yLabel, series, logX, lines: false);

    /// <summary>A line chart: one line with markers per series.</summary>
    public static string Lines(string title, string xLabel, string yLabel, IReadOnlyList<Series> series) =>
        Chart(title, xLabel, yLabel, series, logX: false, lines: true);

    private static string Chart(string title, string xLabel, string yLabel, IReadOnlyList<Series> series, bool logX, bool lines)
    {
        var grid = OxyColor.FromRgb(235, 235, 235);
        var model = new PlotModel { Title = title, DefaultFont = "DejaVu Sans, sans-serif", TitleFontSize = 14, DefaultFontSize = 11, Padding = new OxyThickness(8, 20, 8, 8) };
        model.Axes.Add(logX
            ? new LogarithmicAxis { Position = AxisPosition.Bottom, Title = $"{xLabel} (log scale)", MajorGridlineStyle = LineStyle.Solid, MajorGridlineColor = grid }
            : new LinearAxis { Position = AxisPosition.Bottom, Title = xLabel, MajorGridlineStyle = LineStyle.Solid, MajorGridlineColor = grid });
        model.Axes.Add(new LinearAxis { Position = AxisPosition.Left, Title = yLabel, MajorGridlineStyle = LineStyle.Solid, MajorGridlineColor = grid });
        for (int s = 0; s < series.Count; s++)
        {
            var points = series[s].Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y) && (!logX || p.X > 0)).ToList();
            if (points.Count == 0) continue;
            var color = OxyColor.Parse(series[s].Color ?? Palette[s % Palette.Count]);
            if (lines)
            {
                var line = new LineSeries { Title = series[s].Name, Color = color, StrokeThickness = 2, MarkerType = MarkerType.Circle, MarkerSize = 3, MarkerFill = color };
                line.Points.AddRange(points.Select(p => new DataPoint(p.X, p.Y)));
                model.Series.Add(line);
            }
            else
            {
                var scatter = new ScatterSeries { Title = series[s].Name, MarkerType = MarkerType.Circle, MarkerSize = 6, MarkerFill = color };
                scatter.Points.AddRange(points.Select(p => new ScatterPoint(p.X, p.Y)));
                model.Series.Add(scatter);
            }
        }
        if (model.Series.Count == 0) model.Subtitle = "no data";
        else model.Legends.Add(new Legend { LegendPosition = LegendPosition.RightTop, LegendPlacement = LegendPlacement.Outside, LegendItemSpacing = 8, LegendLineSpacing = 6, LegendPadding = 8 });
        return SvgExporter.ExportToString(model, 620, 340, isDocument: false);
    }
}
