using System.CommandLine;
using Microsoft.ML.DeepExtensions.AutoML;
using Spectre.Console;

namespace Microsoft.ML.DeepExtensions.Cli;

/// <summary>
/// What the user sees: on a terminal, a live Spectre.Console progress display (budget bar, current candidate, each
/// finished candidate as a line above it) and the leaderboard as a table; with <c>--plain</c> or when the output is
/// redirected (logs, CI), one line per event and the fixed-width text leaderboard.
/// </summary>
internal static class Ui
{
    /// <summary>The global <c>--plain</c> option.</summary>
    public static readonly Option<bool> PlainOption = new("--plain")
    {
        Description = "Plain text output (no colours, no live progress): for logs and CI. Automatic when the output is redirected.",
        Recursive = true,
    };

    /// <summary>True when the output should be plain text.</summary>
    public static bool Plain(ParseResult parse) => parse.GetValue(PlainOption) || !AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>Runs <paramref name="work"/> with a progress sink for the comparison, drawn as <paramref name="plain"/> asks.</summary>
    public static T WithProgress<T>(bool plain, Func<IProgress<ComparisonProgress>, T> work)
    {
        if (plain) return work(new PlainProgress(Console.Out));
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(true)
            .HideCompleted(true)
            .Columns(new SpinnerColumn(), new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var budget = ctx.AddTask("starting", maxValue: 1);
                result = work(new LiveProgress(budget));
                budget.Value = budget.MaxValue;
            });
        return result;
    }

    /// <summary>Prints the leaderboard: a Spectre table on a terminal, the report's text table otherwise.</summary>
    public static void Leaderboard(ComparisonResult result, bool plain)
    {
        if (plain)
        {
            Console.WriteLine(Reports.ConsoleTable(result));
            return;
        }
        var metrics = result.MetricNames;
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"{Markup.Escape(result.Task.ToString())} on {Markup.Escape(result.DataName)}")
            .Caption($"{result.Rows.Train:N0} training / {result.Rows.Validation:N0} validation rows, ranked by {Markup.Escape(result.RankBy)}; " +
                     $"{result.Elapsed.TotalSeconds:F0} s of a {result.TimeBudget.TotalSeconds:F0} s budget" + (result.Cancelled ? " — [red]cancelled[/], partial" : $"; {Markup.Escape(result.Ending)}"));
        table.AddColumn("#").AddColumn("Candidate").AddColumn("Kind");
        foreach (var m in metrics) table.AddColumn(new TableColumn(Markup.Escape(m)).RightAligned());
        foreach (var c in new[] { "Train s", "Peak MB", "p50 ms", "Model" }) table.AddColumn(new TableColumn(c).RightAligned());
        foreach (var e in result.Entries)
        {
            var cells = new List<string> { e.Status == CandidateStatus.Completed ? e.Rank.ToString() : "-", Markup.Escape(e.Name), e.Kind.ToString() };
            if (e.Status == CandidateStatus.Completed)
            {
                bool best = e == result.Best;
                cells.AddRange(metrics.Select(m => best && m == result.RankBy ? $"[bold green]{e.Metric(m):F4}[/]" : $"{e.Metric(m):F4}"));
                cells.AddRange([$"{e.TrainSeconds:F1}", $"{e.PeakMemoryBytes / 1048576.0:F0}", $"{e.LatencyP50Milliseconds:F3}", Size(e.ModelBytes)]);
            }
            else
            {
                cells.Add($"[red]{e.Status}[/]");
                cells.AddRange(Enumerable.Repeat("", metrics.Count + 3));
            }
            table.AddRow(cells.ToArray());
        }
        AnsiConsole.Write(table);
        // Why a candidate did not complete, below the table: a long reason would not fit a cell.
        foreach (var e in result.Entries.Where(e => e.Status != CandidateStatus.Completed))
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(e.Name)}[/] {e.Status}: {Markup.Escape(e.Error ?? "")}");
    }

    /// <summary>An error line on standard error.</summary>
    public static void Error(string command, string message) => Console.Error.WriteLine($"{command}: {message}");

    private static string Size(long bytes) => bytes >= 1 << 20 ? $"{bytes / 1048576.0:F1} MB" : $"{bytes / 1024.0:F0} KB";

    /// <summary>Updates one Spectre task: the budget fraction as its value, the current candidate and stage as its text.</summary>
    private sealed class LiveProgress(ProgressTask budget) : IProgress<ComparisonProgress>
    {
        public void Report(ComparisonProgress p)
        {
            budget.MaxValue = Math.Max(1, p.Budget.TotalSeconds);
            budget.Value = Math.Min(budget.MaxValue, p.Elapsed.TotalSeconds);
            string message = p.Message.Length > 70 ? p.Message[..69] + "…" : p.Message;
            budget.Description = $"{p.Index + 1}/{p.Count} {Markup.Escape(message)}";
            if (p.Stage is not ("epoch" or "trial" or "measuring" or "fold"))
                AnsiConsole.MarkupLine($"[grey]{p.Elapsed.TotalSeconds,4:F0} s[/] {Markup.Escape(p.Message)}");
        }
    }

    /// <summary>One line per event, with the budget used so far: readable in a log file.</summary>
    private sealed class PlainProgress(TextWriter output) : IProgress<ComparisonProgress>
    {
        private readonly object _lock = new();

        public void Report(ComparisonProgress p)
        {
            lock (_lock) output.WriteLine($"[{p.Elapsed.TotalSeconds,4:F0}/{p.Budget.TotalSeconds:F0} s {p.Index + 1}/{p.Count}] {p.Message}");
        }
    }
}
