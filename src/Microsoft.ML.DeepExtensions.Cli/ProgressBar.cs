using Microsoft.ML.DeepExtensions.AutoML;

namespace Microsoft.ML.DeepExtensions.Cli;

/// <summary>
/// Shows a comparison's progress: a bar of the time budget and the candidates done, redrawn in place on a terminal
/// (one line per event when the output is redirected, so logs stay readable).
/// </summary>
internal sealed class ProgressBar(TextWriter output, bool interactive) : IProgress<ComparisonProgress>
{
    private readonly object _lock = new();
    private int _width;

    public void Report(ComparisonProgress p)
    {
        lock (_lock)
        {
            bool transient = p.Stage is "epoch" or "trial" or "measuring" or "fold";
            string line = $"{Bar(p)} {p.Message}";
            if (interactive && transient)
            {
                line = line.Length > 150 ? line[..149] + "…" : line;
                output.Write("\r" + line.PadRight(_width));
                _width = line.Length;
                return;
            }
            if (interactive && _width > 0) output.Write("\r" + new string(' ', _width) + "\r");
            _width = 0;
            output.WriteLine(line);
        }
    }

    public void Done()
    {
        lock (_lock)
        {
            if (interactive && _width > 0) output.WriteLine();
            _width = 0;
        }
    }

    private static string Bar(ComparisonProgress p)
    {
        const int n = 20;
        double f = Math.Clamp(p.Elapsed.TotalSeconds / p.Budget.TotalSeconds, 0, 1);
        int filled = (int)Math.Round(f * n);
        return $"[{new string('#', filled)}{new string('.', n - filled)}] {p.Elapsed.TotalSeconds,4:F0}/{p.Budget.TotalSeconds:F0} s  {p.Index + 1}/{p.Count}";
    }
}
