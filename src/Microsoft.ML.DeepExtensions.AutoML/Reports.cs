using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>The leaderboard as a console table, CSV, JSON and a self-contained HTML report with SVG plots.</summary>
public static class Reports
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>A fixed-width table, best first, then failed/cancelled/skipped candidates with their reasons.</summary>
    public static string ConsoleTable(ComparisonResult result)
    {
        var metrics = result.MetricNames;
        var sb = new StringBuilder();
        sb.AppendLine($"{result.Task} on {result.DataName}: {result.Rows.Train:N0} training / {result.Rows.Validation:N0} validation rows"
            + (result.Folds > 1 ? $" (fold 1 of {result.Folds})" : "") + $", ranked by {result.RankBy}; {result.Elapsed.TotalSeconds:F0} s of a {result.TimeBudget.TotalSeconds:F0} s budget"
            + (result.Cancelled ? " — CANCELLED, partial leaderboard" : ""));
        if (result.Ending.Length > 0 && !result.Cancelled) sb.AppendLine($"Ending: {result.Ending}");
        var header = $"{"#",2} {"Candidate",-18} {"Kind",-7} " + string.Concat(metrics.Select(m => $"{m,14} ")) +
                     $"{"Train s",8} {"Total s",8} {"Peak MB",8} {"p50 ms",8} {"p95 ms",8} {"rows/s",9} {"Model",9} {"Device",6}";
        sb.AppendLine(header).AppendLine(new string('-', header.Length));
        foreach (var e in result.Entries.Where(e => e.Status == CandidateStatus.Completed))
            sb.AppendLine($"{e.Rank,2} {Trim(e.Name, 18),-18} {e.Kind,-7} " + string.Concat(metrics.Select(m => $"{Num(e.Metric(m)),14} ")) +
                          $"{e.TrainSeconds,8:F1} {e.TotalSeconds,8:F1} {e.PeakMemoryBytes / 1048576.0,8:F0} {e.LatencyP50Milliseconds,8:F3} {e.LatencyP95Milliseconds,8:F3} {e.ThroughputRowsPerSecond,9:F0} {Size(e.ModelBytes),9} {e.Device,6}");
        foreach (var e in result.Entries.Where(e => e.Status != CandidateStatus.Completed))
            sb.AppendLine($"{"-",2} {Trim(e.Name, 18),-18} {e.Kind,-7} {e.Status}: {e.Error}");
        var withParams = result.Entries.Where(e => e.Status == CandidateStatus.Completed && e.Parameters.Count > 0).ToList();
        if (withParams.Count > 0)
        {
            sb.AppendLine("Hyper-parameters:");
            foreach (var e in withParams) sb.AppendLine($"  {e.Name}: {e.Parameters}" + (e.Trials.Count > 0 ? $" (best of {e.Trials.Count} trials)" : ""));
        }
        return sb.ToString();
    }

    /// <summary>Writes the leaderboard as CSV (the columns of <see cref="ComparisonResult.ToDataFrame"/>).</summary>
    public static void WriteCsv(ComparisonResult result, string path)
    {
        var metrics = result.MetricNames;
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(",", new[] { "Rank", "Candidate", "Kind", "Status" }.Concat(metrics)
            .Concat(["TrainSeconds", "TotalSeconds", "PeakMemoryMB", "LatencyP50Ms", "LatencyP95Ms", "ThroughputRowsPerSec", "ModelBytes", "Device", "Parameters", "Error"])));
        foreach (var e in result.Entries)
        {
            var cells = new List<string> { e.Rank.ToString(Inv), e.Name, e.Kind.ToString(), e.Status.ToString() };
            cells.AddRange(metrics.Select(m => e.Metric(m).ToString("R", Inv)));
            cells.AddRange([e.TrainSeconds.ToString("F3", Inv), e.TotalSeconds.ToString("F3", Inv), (e.PeakMemoryBytes / 1048576.0).ToString("F1", Inv),
                e.LatencyP50Milliseconds.ToString("F4", Inv), e.LatencyP95Milliseconds.ToString("F4", Inv), e.ThroughputRowsPerSecond.ToString("F1", Inv),
                e.ModelBytes.ToString(Inv), e.Device, e.Parameters.ToString(), e.Error ?? ""]);
            sb.AppendLine(string.Join(",", cells.Select(Csv)));
        }
        File.WriteAllText(path, sb.ToString());
    }

    /// <summary>The whole result (entries with metrics, trials and learning curves) as indented JSON.</summary>
    public static string ToJson(ComparisonResult result) => JsonSerializer.Serialize(new
    {
        result.DataName,
        Task = result.Task.ToString(),
        result.RankBy,
        Rows = new { result.Rows.Train, result.Rows.Validation },
        result.Folds,
        TimeBudgetSeconds = result.TimeBudget.TotalSeconds,
        ElapsedSeconds = result.Elapsed.TotalSeconds,
        result.Cancelled,
        result.Ending,
        result.BestPerClass,
        result.BestConfusion,
        Entries = result.Entries.Select(e => new
        {
            e.Rank, e.Name, Kind = e.Kind.ToString(), Status = e.Status.ToString(), e.Error, e.Metrics, e.TrainSeconds, e.TotalSeconds,
            e.PeakMemoryBytes, e.LatencyP50Milliseconds, e.LatencyP95Milliseconds, e.ThroughputRowsPerSecond, e.ModelBytes, e.Device,
            Parameters = e.Parameters.ToDictionary(p => p.Key, p => HyperParameters.Format(p.Value)),
            e.Trials,
            LearningCurve = e.History?.Epochs,
        }),
    }, Json);

    /// <summary>Writes <see cref="ToJson"/> to <paramref name="path"/>.</summary>
    public static void WriteJson(ComparisonResult result, string path) => File.WriteAllText(path, ToJson(result));

    /// <summary>The metric-vs-training-time scatter plot (one point per completed candidate).</summary>
    public static string MetricVsTimeSvg(ComparisonResult result) => SvgCharts.Scatter(
        $"{result.RankBy} vs training time", "training seconds", result.RankBy,
        result.Entries.Where(e => e.Status == CandidateStatus.Completed)
            .Select(e => new SvgCharts.Series($"{e.Name}", [(Math.Max(e.TrainSeconds, 1e-3), e.Metric(result.RankBy))], ColorOf(result, e))).ToList(),
        logX: true);

    /// <summary>A candidate's colour, the same in every chart of <paramref name="result"/>: by its place among the entries.</summary>
    public static string ColorOf(ComparisonResult result, LeaderboardEntry entry) =>
        SvgCharts.Palette[Math.Max(0, result.Entries.OrderBy(e => e.Name, StringComparer.Ordinal).ToList().IndexOf(entry)) % SvgCharts.Palette.Count];

    /// <summary>Learning curves of the deep candidates' returned models: validation metric (or training loss) per epoch.</summary>
    public static string LearningCurvesSvg(ComparisonResult result)
    {
        var deep = result.Entries.Where(e => e.History is { Epochs.Count: > 0 }).ToList();
        bool validation = deep.Count > 0 && deep.All(e => e.History!.Epochs.All(r => r.ValidationMetric is not null));
        string metric = deep.FirstOrDefault()?.History!.Epochs[0].MetricName ?? "metric";
        return SvgCharts.Lines(validation ? $"Learning curves: held-out {metric}" : "Learning curves: training loss", "epoch",
            validation ? metric : "training loss",
            deep.Select(e => new SvgCharts.Series(e.Name, e.History!.Epochs.Select(r => ((double)r.Epoch, validation ? r.ValidationMetric!.Value : r.TrainLoss)).ToList(), ColorOf(result, e))).ToList());
    }

    /// <summary>The leaderboard as an HTML table (used by the report and by notebook formatters).</summary>
    public static string HtmlTable(ComparisonResult result)
    {
        var metrics = result.MetricNames;
        var sb = new StringBuilder("<table class=\"lb\"><thead><tr><th>#</th><th>Candidate</th><th>Kind</th><th>Status</th>");
        foreach (var m in metrics) sb.Append($"<th>{E(m)}{(m == result.RankBy ? " ▼" : "")}</th>");
        sb.Append("<th>Train s</th><th>Total s</th><th>Peak MB</th><th>p50 ms</th><th>p95 ms</th><th>rows/s</th><th>model.zip</th><th>Device</th><th>Hyper-parameters / error</th></tr></thead><tbody>");
        foreach (var e in result.Entries)
        {
            bool ok = e.Status == CandidateStatus.Completed;
            sb.Append($"<tr class=\"{(e.Rank == 1 ? "best" : ok ? "" : "bad")}\"><td>{(ok ? e.Rank.ToString(Inv) : "–")}</td><td>{E(e.Name)}</td><td>{e.Kind}</td><td>{e.Status}</td>");
            foreach (var m in metrics) sb.Append($"<td class=\"n\">{(ok ? Num(e.Metric(m)) : "")}</td>");
            if (ok)
                sb.Append($"<td class=\"n\">{e.TrainSeconds.ToString("F1", Inv)}</td><td class=\"n\">{e.TotalSeconds.ToString("F1", Inv)}</td><td class=\"n\">{(e.PeakMemoryBytes / 1048576.0).ToString("F0", Inv)}</td>" +
                          $"<td class=\"n\">{e.LatencyP50Milliseconds.ToString("F3", Inv)}</td><td class=\"n\">{e.LatencyP95Milliseconds.ToString("F3", Inv)}</td><td class=\"n\">{e.ThroughputRowsPerSecond.ToString("F0", Inv)}</td>" +
                          $"<td class=\"n\">{Size(e.ModelBytes)}</td><td>{E(e.Device)}</td><td>{E(e.Parameters.ToString())}</td>");
            else sb.Append($"<td colspan=\"8\"></td><td>{E(e.Error ?? "")}</td>");
            sb.Append("</tr>");
        }
        return sb.Append("</tbody></table>").ToString();
    }

    /// <summary>Styles for <see cref="HtmlTable"/>.</summary>
    public const string Css = "table.lb{border-collapse:collapse;font:12px sans-serif}table.lb th,table.lb td{border:1px solid #ccc;padding:3px 6px}" +
                              "table.lb th{background:#f2f2f2}table.lb td.n{text-align:right;font-variant-numeric:tabular-nums}table.lb tr.best{background:#e8f5e9}table.lb tr.bad{color:#a33}";

    /// <summary>A self-contained HTML page: summary, leaderboard, metric-vs-time and learning-curve plots, search trials.</summary>
    public static string Html(ComparisonResult result)
    {
        var sb = new StringBuilder();
        sb.Append($"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Deep vs classic: {E(result.DataName)}</title><style>body{{font:14px sans-serif;margin:24px}}{Css}</style></head><body>");
        sb.Append($"<h1>Deep vs classic on {E(result.DataName)}</h1><p>{result.Task}, {result.Rows.Train:N0} training / {result.Rows.Validation:N0} validation rows" +
                  (result.Folds > 1 ? $", {result.Folds}-fold cross-validation (metrics averaged)" : "") +
                  $"; ranked by {E(result.RankBy)}; {result.Elapsed.TotalSeconds:F0} s of a {result.TimeBudget.TotalSeconds:F0} s budget" +
                  (result.Cancelled ? ". <b>Cancelled: partial leaderboard.</b>" : ".") +
                  $" Best: <b>{E(result.Best?.Name ?? "none")}</b>. Generated {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.</p>");
        sb.Append(HtmlTable(result));
        sb.Append("<p>Metrics: ML.NET evaluators on the validation split. Train s: fit of the returned model; Total s: search, folds and measurements. " +
                  "Peak MB: process working set while training. p50/p95: single-row PredictionEngine latency. rows/s: one batch Transform.</p>");
        sb.Append("<div style=\"display:flex;flex-wrap:wrap;gap:16px\">").Append(MetricVsTimeSvg(result)).Append(LearningCurvesSvg(result)).Append("</div>");
        if (result.BestConfusion is { } confusion && result.BestPerClass.Count == confusion.Length)
        {
            var classes = result.BestPerClass;
            sb.Append($"<h2>Best model ({E(result.Best?.Name ?? "")}) per class, on the validation split</h2><table class=\"lb\"><tr><th>Class</th><th>Rows</th><th>Precision</th><th>Recall</th>");
            foreach (var c in classes) sb.Append($"<th title=\"predicted {E(c.Class)}\">→ {E(c.Class)}</th>");
            sb.Append("</tr>");
            for (int i = 0; i < classes.Count; i++)
            {
                sb.Append($"<tr><td>{E(classes[i].Class)}</td><td class=\"n\">{classes[i].Rows:N0}</td><td class=\"n\">{Num(classes[i].Precision)}</td><td class=\"n\">{Num(classes[i].Recall)}</td>");
                for (int j = 0; j < classes.Count; j++) sb.Append($"<td class=\"n\"{(i == j ? " style=\"background:#e8f5e9\"" : "")}>{confusion[i][j]:N0}</td>");
                sb.Append("</tr>");
            }
            sb.Append("</table><p>Rows: true class; → columns: predicted class (the confusion matrix).</p>");
        }
        var trials = result.Entries.Where(e => e.Trials.Count > 0).ToList();
        if (trials.Count > 0)
        {
            sb.Append("<h2>Search trials (successive halving)</h2><table class=\"lb\"><tr><th>Candidate</th><th>Rung</th><th>Epochs</th><th>Held-out score</th><th>Seconds</th><th>Configuration</th></tr>");
            foreach (var e in trials)
                foreach (var t in e.Trials)
                    sb.Append($"<tr><td>{E(e.Name)}</td><td class=\"n\">{t.Rung + 1}</td><td class=\"n\">{t.Epochs}</td><td class=\"n\">{Num(t.Score)}</td><td class=\"n\">{t.Seconds.ToString("F1", Inv)}</td><td>{E(t.Parameters)}</td></tr>");
            sb.Append("</table>");
        }
        return sb.Append("</body></html>").ToString();
    }

    /// <summary>Writes <see cref="Html"/> to <paramref name="path"/>.</summary>
    public static void WriteHtml(ComparisonResult result, string path) => File.WriteAllText(path, Html(result));

    /// <summary>Writes leaderboard.csv, leaderboard.json and report.html into <paramref name="directory"/>; returns their paths.</summary>
    public static IReadOnlyList<string> WriteAll(ComparisonResult result, string directory)
    {
        Directory.CreateDirectory(directory);
        string csv = Path.Combine(directory, "leaderboard.csv"), json = Path.Combine(directory, "leaderboard.json"), html = Path.Combine(directory, "report.html");
        WriteCsv(result, csv);
        WriteJson(result, json);
        WriteHtml(result, html);
        return [csv, json, html];
    }

    private static string Num(double v) => double.IsNaN(v) ? "n/a" : v.ToString("F4", Inv);
    private static string Size(long bytes) => bytes >= 1 << 20 ? $"{bytes / 1048576.0:F1} MB" : $"{bytes / 1024.0:F0} KB";
    private static string Trim(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";
    private static string E(string s) => WebUtility.HtmlEncode(s);
    private static string Csv(string s) => s.IndexOfAny([',', '"', '\n']) >= 0 ? $"\"{s.Replace("\"", "\"\"")}\"" : s;
}
