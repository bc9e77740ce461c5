using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Microsoft.ML.DeepExtensions.Cli;

/// <summary>Option helpers shared by the commands, and the one place a command's expected failures become exit code 2.</summary>
internal static class Cli
{
    /// <summary>A positive integer option with a default.</summary>
    public static Option<int> Positive(string name, string description, int fallback)
    {
        var option = new Option<int>(name) { Description = description, HelpName = "N", DefaultValueFactory = _ => fallback };
        option.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) r.AddError($"{name} must be a positive integer."); });
        return option;
    }

    /// <summary>Parses a duration: plain seconds, or a number with s, m or h.</summary>
    public static TimeSpan Duration(ArgumentResult r)
    {
        string s = r.Tokens.Single().Value;
        double scale = s.EndsWith('m') ? 60 : s.EndsWith('h') ? 3600 : 1;
        if (double.TryParse(s.TrimEnd('s', 'm', 'h'), NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > 0) return TimeSpan.FromSeconds(v * scale);
        r.AddError($"{((OptionResult)r.Parent!).Option.Name} must be a positive duration like 240, 90s or 5m; got '{s}'.");
        return default;
    }

    /// <summary>Runs a command's work; the errors a user can fix (bad file, column, option) print one line and exit with 2.</summary>
    public static int Guard(string command, Func<int> work)
    {
        try
        {
            return work();
        }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException or InvalidDataException or FormatException or ModelFileException or InvalidOperationException)
        {
            Ui.Error(command, e.Message);
            return 2;
        }
    }
}
