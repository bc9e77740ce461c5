using System.Net;
using System.Text;
using Microsoft.DotNet.Interactive.Formatting;
using Microsoft.ML.DeepExtensions.AutoML;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.Interactive;

/// <summary>
/// HTML/SVG formatters for .NET Interactive. Referencing the package with <c>#r "nuget: Microsoft.ML.DeepExtensions.Interactive"</c>
/// registers them (the package's <c>extension.dib</c> calls <see cref="Register"/>); calling <see cref="Register"/> yourself is
/// harmless. Then a cell that ends with a <see cref="ComparisonResult"/>, <see cref="TrainingHistory"/>,
/// <see cref="NetworkSummary"/> or <see cref="ImageGrid"/> displays as a table or chart.
/// </summary>
public static class DeepFormatters
{
    private static int _registered;

    /// <summary>Registers the formatters with <see cref="Formatter"/> (once per process).</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1) return;
        Formatter.Register<ComparisonResult>((r, w) => w.Write(Html(r)), HtmlFormatter.MimeType);
        Formatter.Register<TrainingHistory>((h, w) => w.Write(Html(h)), HtmlFormatter.MimeType);
        Formatter.Register<NetworkSummary>((s, w) => w.Write(Html(s)), HtmlFormatter.MimeType);
        Formatter.Register<ImageGrid>((g, w) => w.Write(g.ToHtml()), HtmlFormatter.MimeType);
    }

    /// <summary>A leaderboard: summary line, ranked table, metric-vs-training-time and learning-curve plots.</summary>
    public static string Html(ComparisonResult result) =>
        $"<div><style>{Reports.Css}</style><p><b>{E(result.Task.ToString())}</b> on {E(result.DataName)}: {result.Rows.Train:N0} training / {result.Rows.Validation:N0} validation rows, ranked by {E(result.RankBy)}" +
        $"{(result.Cancelled ? " (cancelled: partial)" : "")}; best: <b>{E(result.Best?.Name ?? "none")}</b></p>{Reports.HtmlTable(result)}" +
        $"<div style=\"display:flex;flex-wrap:wrap;gap:12px\">{Reports.MetricVsTimeSvg(result)}{Reports.LearningCurvesSvg(result)}</div></div>";

    /// <summary>Loss curves (training and validation loss per epoch) and, when recorded, the validation metric.</summary>
    public static string Html(TrainingHistory history)
    {
        var epochs = history.Epochs;
        var loss = new List<SvgCharts.Series> { new("train loss", epochs.Select(e => ((double)e.Epoch, e.TrainLoss)).ToList()) };
        if (epochs.Any(e => e.ValidationLoss is not null))
            loss.Add(new("validation loss", epochs.Where(e => e.ValidationLoss is not null).Select(e => ((double)e.Epoch, e.ValidationLoss!.Value)).ToList()));
        var sb = new StringBuilder("<div style=\"display:flex;flex-wrap:wrap;gap:12px\">");
        sb.Append(SvgCharts.Lines("Loss", "epoch", "loss", loss));
        if (epochs.Any(e => e.ValidationMetric is not null))
        {
            string metric = epochs.First(e => e.ValidationMetric is not null).MetricName;
            sb.Append(SvgCharts.Lines($"Validation {metric}", "epoch", metric,
                [new($"validation {metric}", epochs.Where(e => e.ValidationMetric is not null).Select(e => ((double)e.Epoch, e.ValidationMetric!.Value)).ToList())]));
        }
        sb.Append("</div>");
        sb.Append($"<p style=\"font:12px sans-serif\">{epochs.Count} epochs, {history.TotalSeconds:F1} s; stopped: {history.StopReason}; weights of epoch {history.BestEpoch}</p>");
        return sb.ToString();
    }

    /// <summary>A Keras-like layer table.</summary>
    public static string Html(NetworkSummary summary)
    {
        var sb = new StringBuilder($"<table style=\"border-collapse:collapse;font:12px monospace\"><caption style=\"text-align:left;font-weight:bold\">{E(summary.Family)}</caption>");
        sb.Append("<tr><th style=\"text-align:left;padding:2px 10px\">Layer</th><th style=\"text-align:left;padding:2px 10px\">Output shape</th><th style=\"text-align:right;padding:2px 10px\">Params</th></tr>");
        foreach (var l in summary.Layers)
            sb.Append($"<tr style=\"border-top:1px solid #ddd\"><td style=\"padding:2px 10px\">{E(l.Name)}</td><td style=\"padding:2px 10px\">({string.Join(", ", l.OutputShape)})</td><td style=\"text-align:right;padding:2px 10px\">{l.Parameters:N0}</td></tr>");
        return sb.Append($"<tr style=\"border-top:2px solid #999\"><td colspan=\"2\" style=\"padding:2px 10px\"><b>Total params</b></td><td style=\"text-align:right;padding:2px 10px\"><b>{summary.TotalParameters:N0}</b></td></tr></table>").ToString();
    }

    private static string E(string s) => WebUtility.HtmlEncode(s);
}
