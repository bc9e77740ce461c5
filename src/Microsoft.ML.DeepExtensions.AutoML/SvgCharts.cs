using System.Globalization;
using System.Net;
using System.Text;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>Small self-contained SVG charts (no scripts, no network): scatter plots and line charts.</summary>
public static class SvgCharts
{
    private static readonly string[] Palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

    /// <summary>A named series of (x, y) points.</summary>
    /// <param name="Name">Legend text.</param>
    /// <param name="Points">The points, in drawing order.</param>
    public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points);

    /// <summary>A scatter plot: one labelled point per series' first point; <paramref name="logX"/> for a log10 x-axis.</summary>
    public static string Scatter(string title, string xLabel, string yLabel, IReadOnlyList<Series> series, bool logX = false) =>
        Chart(title, xLabel, yLabel, series, logX, lines: false);

    /// <summary>A line chart: one polyline with markers per series.</summary>
    public static string Lines(string title, string xLabel, string yLabel, IReadOnlyList<Series> series) =>
        Chart(title, xLabel, yLabel, series, logX: false, lines: true);

    private static string Chart(string title, string xLabel, string yLabel, IReadOnlyList<Series> series, bool logX, bool lines)
    {
        const int W = 560, H = 340, L = 64, R = 150, T = 32, B = 48;
        var pts = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y) && (!logX || p.X > 0)).ToList();
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">");
        sb.Append($"<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/><text x=\"{W / 2}\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">{Esc(title)}</text>");
        if (pts.Count == 0)
        {
            sb.Append($"<text x=\"{W / 2}\" y=\"{H / 2}\" text-anchor=\"middle\">no data</text></svg>");
            return sb.ToString();
        }
        Func<double, double> fx = logX ? Math.Log10 : x => x;
        double x0 = pts.Min(p => fx(p.X)), x1 = pts.Max(p => fx(p.X)), y0 = pts.Min(p => p.Y), y1 = pts.Max(p => p.Y);
        if (x1 - x0 < 1e-12) { x0 -= 0.5; x1 += 0.5; }
        if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
        double padX = (x1 - x0) * 0.06, padY = (y1 - y0) * 0.08;
        (x0, x1, y0, y1) = (x0 - padX, x1 + padX, y0 - padY, y1 + padY);
        int pw = W - L - R, ph = H - T - B;
        double Px(double x) => L + (fx(x) - x0) / (x1 - x0) * pw;
        double Py(double y) => T + ph - (y - y0) / (y1 - y0) * ph;

        // Axes, ticks, labels.
        sb.Append($"<rect x=\"{L}\" y=\"{T}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>");
        for (int i = 0; i <= 4; i++)
        {
            double yv = y0 + (y1 - y0) * i / 4, yp = Py(yv);
            sb.Append($"<line x1=\"{L}\" x2=\"{L + pw}\" y1=\"{F(yp)}\" y2=\"{F(yp)}\" stroke=\"#eee\"/><text x=\"{L - 4}\" y=\"{F(yp + 4)}\" text-anchor=\"end\">{Tick(yv)}</text>");
        }
        // x ticks: whole numbers when every x is one (epochs), else five evenly spaced values.
        var xTicks = !logX && pts.All(p => p.X % 1 == 0)
            ? Enumerable.Range(0, 100).Select(k => pts.Min(p => p.X) + k * Math.Max(1, Math.Ceiling((pts.Max(p => p.X) - pts.Min(p => p.X)) / 5)))
                .TakeWhile(v => v <= pts.Max(p => p.X)).ToList()
            : Enumerable.Range(0, 5).Select(i => logX ? Math.Pow(10, x0 + (x1 - x0) * i / 4) : x0 + (x1 - x0) * i / 4).ToList();
        foreach (double xv in xTicks)
            sb.Append($"<text x=\"{F(Px(xv))}\" y=\"{T + ph + 14}\" text-anchor=\"middle\">{Tick(xv)}</text>");
        sb.Append($"<text x=\"{L + pw / 2}\" y=\"{H - 10}\" text-anchor=\"middle\">{Esc(xLabel)}{(logX ? " (log scale)" : "")}</text>");
        sb.Append($"<text transform=\"translate(14 {T + ph / 2}) rotate(-90)\" text-anchor=\"middle\">{Esc(yLabel)}</text>");

        // Series and legend.
        for (int s = 0; s < series.Count; s++)
        {
            string color = Palette[s % Palette.Length];
            var sp = series[s].Points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y) && (!logX || p.X > 0)).ToList();
            if (lines && sp.Count > 1)
                sb.Append($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{string.Join(" ", sp.Select(p => $"{F(Px(p.X))},{F(Py(p.Y))}"))}\"/>");
            foreach (var p in sp)
                sb.Append($"<circle cx=\"{F(Px(p.X))}\" cy=\"{F(Py(p.Y))}\" r=\"{(lines ? 3 : 5)}\" fill=\"{color}\"><title>{Esc(series[s].Name)}: ({Tick(p.X)}, {Tick(p.Y)})</title></circle>");
            int ly = T + 8 + s * 16;
            sb.Append($"<rect x=\"{L + pw + 10}\" y=\"{ly - 8}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{L + pw + 24}\" y=\"{ly + 1}\">{Esc(series[s].Name)}</text>");
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    private static string F(double v) => v.ToString("F1", CultureInfo.InvariantCulture);

    private static string Tick(double v) =>
        Math.Abs(v) >= 1000 ? v.ToString("F0", CultureInfo.InvariantCulture)
        : Math.Abs(v) >= 10 ? v.ToString("F1", CultureInfo.InvariantCulture)
        : v.ToString("G3", CultureInfo.InvariantCulture);

    private static string Esc(string s) => WebUtility.HtmlEncode(s);
}
