using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.DeepExtensions.AutoML;
using Microsoft.ML.DeepExtensions.Datasets;

namespace Microsoft.ML.DeepExtensions.Cli;

/// <summary>`deepext compare`: loads the data, runs a <see cref="DeepComparison"/> with progress, writes the reports.</summary>
internal static class CompareCommand
{
    private const string Help = """
        deepext compare [--dataset FILE --label COLUMN] [options]

          --dataset FILE      CSV or TSV file (header detected; separator guessed). Without it: the embedded
                              Fashion-MNIST 10k split (data/fashion-mnist), CNN and MLP vs LightGBM and SDCA.
          --label COLUMN      label column: name (case-insensitive) or 0-based index (required with --dataset)
          --task T            auto (default) | binary | multiclass | regression
          --time SECONDS      time budget for the whole run (default 240; also 5m, 90s)
          --candidate-time S  cap per candidate (default: classic ones up to half the time left, deep ones share the rest)
          --candidates LIST   comma-separated, e.g. MLP,LightGBM,SDCA (default: every candidate that applies)
          --image SHAPE       the features are an image: HxW (grayscale) or CxHxW; enables the CNN and ResNet18 (fine-tuned)
          --text COLUMN       a raw text column of the dataset: enables all-MiniLM-L6-v2 (fine-tuned, and embeddings + SDCA)
          --folds K           k-fold cross-validation (default 1: one 80/20 validation split)
          --trials N          configurations per deep candidate, successive halving (default 4; 3 on the default data)
          --max-epochs N      deep candidates' full-length epochs (default: each family's own)
          --rank-by METRIC    Accuracy, AUC, F1, LogLoss | MicroAccuracy, MacroAccuracy, LogLoss | RMSE, MAE, RSquared
          --threads N         threads per trainer (default 1: comparable timings, no spinning on busy machines)
          --seed N            seed for the split, the search and the trainers (default 1)
          --output DIR        where leaderboard.csv/.json, report.html and best-model.zip go (default compare-output)

        Ctrl-C stops cleanly: the candidate in flight is reported as cancelled and the partial leaderboard is written.
        """;

    public static int Run(string[] args)
    {
        var a = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] is "-h" or "--help") { Console.WriteLine(Help); return 0; }
            if (!args[i].StartsWith("--") || i + 1 >= args.Length)
            {
                Console.Error.WriteLine($"compare: expected '--option value', got '{args[i]}'.\n\n{Help}");
                return 2;
            }
            a[args[i][2..]] = args[++i];
        }
        string[] known = ["dataset", "label", "task", "time", "candidate-time", "candidates", "image", "folds", "trials", "max-epochs", "rank-by", "threads", "seed", "output", "text"];
        if (a.Keys.FirstOrDefault(k => !known.Contains(k, StringComparer.OrdinalIgnoreCase)) is { } unknown)
        {
            Console.Error.WriteLine($"compare: unknown option --{unknown}.\n\n{Help}");
            return 2;
        }

        try
        {
            return Compare(a);
        }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException or InvalidDataException or FormatException)
        {
            Console.Error.WriteLine($"compare: {e.Message}");
            return 2;
        }
    }

    private static int Compare(Dictionary<string, string> a)
    {
        int seed = Int(a, "seed", 1);
        var ml = new MLContext(seed);
        var options = new ComparisonOptions
        {
            Seed = seed,
            TimeBudget = Duration(a.GetValueOrDefault("time", "240")),
            CandidateTimeBudget = a.TryGetValue("candidate-time", out var ct) ? Duration(ct) : null,
            NumberOfThreads = Int(a, "threads", 1),
            Folds = Int(a, "folds", 1),
            RankBy = a.GetValueOrDefault("rank-by"),
            MaxEpochs = a.ContainsKey("max-epochs") ? Int(a, "max-epochs", 0) : null,
            ImageShape = a.TryGetValue("image", out var img) ? Shape(img) : null,
            Candidates = a.TryGetValue("candidates", out var c) ? c.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : null,
            TextColumnName = a.GetValueOrDefault("text"),
            Registry = CandidateRegistry.CreateDefault(),
        };
        // The pretrained networks of Microsoft.ML.DeepExtensions.Pretrained join the comparison where their input is offered.
        foreach (var candidate in PretrainedCandidates.For(PretrainedModels.ResNet18, PretrainedModels.MiniLmL6)) options.Registry.Add(candidate);

        IDataView data;
        string dataName;
        if (a.TryGetValue("dataset", out var path))
        {
            if (!a.TryGetValue("label", out var label)) throw new ArgumentException("--dataset needs --label COLUMN (a name or a 0-based index).");
            var table = TabularData.Load(ml, path, label, Task(a.GetValueOrDefault("task", "auto")));
            Console.WriteLine($"Data: {path}: {table}");
            (data, options.Featurizer, options.Task, dataName) = (table.Data, table.Featurizer, table.Task, Path.GetFileName(path));
            options.Trials = Int(a, "trials", 4);
        }
        else
        {
            // The embedded default: the 10k Fashion-MNIST split shipped in data/fashion-mnist, images of 1×28×28.
            string dir = FashionMnist.FindDirectory("t10k") ?? throw new FileNotFoundException("The embedded Fashion-MNIST (data/fashion-mnist) was not found; pass --dataset.");
            data = FashionMnist.Load(ml, dir, "t10k");
            dataName = "Fashion-MNIST t10k split (10,000 images)";
            options.ImageShape ??= new ImageShape(1, 28, 28);
            options.Candidates ??= ["CNN", "MLP", "LightGBM", "SDCA"];
            options.Trials = Int(a, "trials", 3);
            Console.WriteLine($"Data: {dataName} from {dir}: 10,000 images, 784 pixels, 10 classes; {string.Join(", ", options.Candidates)}");
        }
        string output = a.GetValueOrDefault("output", "compare-output");

        // Ctrl-C: stop cleanly (the second one kills the process).
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            if (cts.IsCancellationRequested) return;
            e.Cancel = true;
            Console.WriteLine();
            Console.WriteLine("Ctrl-C: stopping after the current step; the partial leaderboard will be written (Ctrl-C again to kill).");
            cts.Cancel();
        };
        options.CancellationToken = cts.Token;
        var bar = new ProgressBar(Console.Out, !Console.IsOutputRedirected);
        options.Progress = bar;

        Console.WriteLine($"Budget {options.TimeBudget.TotalSeconds:F0} s, {options.NumberOfThreads} thread(s) per trainer; reports -> {Path.GetFullPath(output)}");
        var result = ml.Deep().Comparison(options).Run(data);
        result.DataName = dataName;
        bar.Done();

        Console.WriteLine();
        Console.WriteLine(Reports.ConsoleTable(result));
        var files = Reports.WriteAll(result, output).ToList();
        if (result.BestModel is not null)
        {
            string model = Path.Combine(output, "best-model.zip");
            result.SaveBestModel(ml, model);
            files.Add(model);
        }
        Console.WriteLine($"Wrote {string.Join(", ", files.Select(Path.GetFileName))} to {Path.GetFullPath(output)}");
        Console.WriteLine(result.Best is { } best
            ? $"Best: {best.Name} ({result.RankBy} {best.Metric(result.RankBy):F4}); {result.Elapsed.TotalSeconds:F0} s of the {result.TimeBudget.TotalSeconds:F0} s budget."
            : "No candidate completed.");
        return result.Cancelled ? 130 : 0;
    }

    private static int Int(Dictionary<string, string> a, string key, int fallback) =>
        !a.TryGetValue(key, out var v) ? fallback
        : int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 1 ? n
        : throw new ArgumentException($"--{key} must be a positive integer; got '{v}'.");

    private static TimeSpan Duration(string s)
    {
        double scale = s.EndsWith('m') ? 60 : s.EndsWith('h') ? 3600 : 1;
        string digits = s.TrimEnd('s', 'm', 'h');
        return double.TryParse(digits, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > 0
            ? TimeSpan.FromSeconds(v * scale)
            : throw new ArgumentException($"--time must be a positive duration like 240, 90s or 5m; got '{s}'.");
    }

    private static ImageShape Shape(string s)
    {
        var p = s.Split('x', '×').Select(x => int.TryParse(x, out int n) && n > 0 ? n : throw new ArgumentException($"--image must be HxW or CxHxW; got '{s}'.")).ToArray();
        return p.Length switch
        {
            2 => new ImageShape(1, p[0], p[1]),
            3 => new ImageShape(p[0], p[1], p[2]),
            _ => throw new ArgumentException($"--image must be HxW or CxHxW; got '{s}'."),
        };
    }

    private static DeepTask Task(string s) => s.ToLowerInvariant() switch
    {
        "auto" => DeepTask.Auto,
        "binary" => DeepTask.BinaryClassification,
        "multiclass" => DeepTask.MulticlassClassification,
        "regression" => DeepTask.Regression,
        _ => throw new ArgumentException($"--task must be auto, binary, multiclass or regression; got '{s}'."),
    };
}
