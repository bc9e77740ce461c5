using System.CommandLine;
using System.CommandLine.Parsing;
using Microsoft.ML;
using Microsoft.ML.DeepExtensions.AutoML;
using Microsoft.ML.DeepExtensions.Datasets;

namespace Microsoft.ML.DeepExtensions.Cli;

/// <summary>`deepext compare`: loads the data, runs a <see cref="DeepComparison"/> with progress, writes the reports.</summary>
internal static class CompareCommand
{
    private static readonly Option<string?> DatasetOption = new("--dataset")
    {
        Description = "CSV or TSV file (header detected, separator guessed), or a folder with one sub-folder of images per class. Without it: the embedded Fashion-MNIST 10k split, CNN and MLP vs LightGBM and SDCA.",
        HelpName = "FILE|FOLDER",
    };
    private static readonly Option<int> ImageSizeOption = Cli.Positive("--image-size", "With an image folder or an image-path column: the side images are resized to.", 32);
    private static readonly Option<bool> GrayscaleOption = new("--grayscale") { Description = "With an image folder or an image-path column: read the images in gray (one channel)." };
    private static readonly Option<string?> LabelOption = new("--label") { Description = "Label column: a name (case-insensitive) or a 0-based index; required with --dataset.", HelpName = "COLUMN" };
    private static readonly Option<string> TaskOption = new("--task") { Description = "The task; auto infers it from the label.", DefaultValueFactory = _ => "auto" };
    private static readonly Option<TimeSpan> TimeOption = new("--time") { Description = "Time budget for the whole run: seconds, or 90s, 5m, 1h.", HelpName = "DURATION", DefaultValueFactory = _ => TimeSpan.FromSeconds(240), CustomParser = r => Cli.Duration(r) };
    private static readonly Option<TimeSpan?> CandidateTimeOption = new("--candidate-time") { Description = "Cap per candidate (default: classic ones up to twice an equal share of the time left, deep ones share the rest).", HelpName = "DURATION", CustomParser = r => Cli.Duration(r) };
    private static readonly Option<string[]?> CandidatesOption = new("--candidates") { Description = "Comma-separated candidates, e.g. MLP,LightGBM,SDCA (default: every candidate that applies).", HelpName = "LIST", CustomParser = r => r.Tokens.SelectMany(t => t.Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToArray() };
    private static readonly Option<ImageShape?> ImageOption = new("--image") { Description = "The features are an image, HxW (grayscale) or CxHxW: enables the CNN, the ViT and ResNet18 (fine-tuned).", HelpName = "SHAPE", CustomParser = Shape };
    private static readonly Option<string?> TextOption = new("--text") { Description = "The raw text column for all-MiniLM-L6-v2 (fine-tuned, and embeddings + SDCA); default: the longest free-text column found.", HelpName = "COLUMN" };
    private static readonly Option<Dictionary<string, ColumnRole>> ColumnOption = new("--column")
    {
        Description = "A column's role instead of the inferred one: NAME=numeric|categorical|text|image|ignore (repeatable).",
        HelpName = "NAME=ROLE", AllowMultipleArgumentsPerToken = false, CustomParser = Roles, DefaultValueFactory = _ => new(),
    };
    private static readonly Option<int> FoldsOption = Cli.Positive("--folds", "k-fold cross-validation (1: one 80/20 validation split).", 1);
    private static readonly Option<int?> TrialsOption = new("--trials") { HelpName = "N", Description = "Configurations per deep candidate, successive halving (default 4; 3 on the embedded data)." };
    private static readonly Option<int?> MaxEpochsOption = new("--max-epochs") { HelpName = "N", Description = "Deep candidates' full-length epochs (default: each family's own)." };
    private static readonly Option<string?> RankByOption = new("--rank-by") { Description = "Accuracy, AUC, F1, LogLoss | MicroAccuracy, MacroAccuracy, LogLoss | RMSE, MAE, RSquared.", HelpName = "METRIC" };
    private static readonly Option<int> ThreadsOption = Cli.Positive("--threads",
        "Threads per trainer; candidates run one after another, each on all cores by default (1 gives the most comparable timings on a busy machine).", Environment.ProcessorCount);
    private static readonly Option<int> SeedOption = Cli.Positive("--seed", "Seed for the split, the search and the trainers.", 1);
    private static readonly Option<string> IsolationOption = new("--isolation")
    {
        Description = "process: each candidate in a worker process of its own (an abort, a hang or memory beyond the limit costs only that candidate; memory per candidate is its own); none: all in this process.",
        DefaultValueFactory = _ => "process",
    };
    private static readonly Option<int?> MemoryOption = new("--candidate-memory")
    {
        HelpName = "MB", Description = "Memory limit per candidate in MB: a network estimated above it fails before it allocates, a worker process above it is killed (default: 80 % of the machine's memory).",
    };
    private static readonly Option<string> OutputOption = new("--output") { Description = "Folder for leaderboard.csv/.json, report.html and best-model.zip.", HelpName = "DIR", DefaultValueFactory = _ => "compare-output" };

    /// <summary>The command, its options and its action.</summary>
    public static System.CommandLine.Command Create()
    {
        TaskOption.AcceptOnlyFromAmong("auto", "binary", "multiclass", "regression");
        IsolationOption.AcceptOnlyFromAmong("process", "none");
        foreach (var o in new[] { TrialsOption, MaxEpochsOption, MemoryOption }) o.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 1) r.AddError($"{o.Name} must be a positive integer."); });
        var command = new System.CommandLine.Command("compare", "Deep vs classic ML.NET trainers on the same split: leaderboard, CSV/JSON/HTML report and the best model. " +
                                             "Ctrl-C stops cleanly: the candidate in flight is reported as cancelled and the partial leaderboard is written.")
        {
            DatasetOption, LabelOption, TaskOption, ColumnOption, ImageSizeOption, GrayscaleOption, TimeOption, CandidateTimeOption, CandidatesOption, ImageOption, TextOption,
            FoldsOption, TrialsOption, MaxEpochsOption, RankByOption, ThreadsOption, SeedOption, IsolationOption, MemoryOption, OutputOption,
        };
        command.SetAction(parse => Cli.Guard("compare", () => Compare(parse)));
        return command;
    }

    private static int Compare(ParseResult parse)
    {
        int seed = parse.GetValue(SeedOption);
        bool plain = Ui.Plain(parse);
        var ml = new MLContext(seed);
        var options = new ComparisonOptions
        {
            Seed = seed,
            TimeBudget = parse.GetValue(TimeOption),
            CandidateTimeBudget = parse.GetValue(CandidateTimeOption),
            NumberOfThreads = parse.GetValue(ThreadsOption),
            Folds = parse.GetValue(FoldsOption),
            RankBy = parse.GetValue(RankByOption),
            MaxEpochs = parse.GetValue(MaxEpochsOption),
            ImageShape = parse.GetValue(ImageOption),
            Candidates = parse.GetValue(CandidatesOption) is { Length: > 0 } named ? named : null,
            TextColumnName = parse.GetValue(TextOption),
            Registry = Registry(),
            CandidateMemoryLimitMegabytes = parse.GetValue(MemoryOption),
        };
        if (parse.GetValue(IsolationOption) == "process")
            (options.Isolation, options.WorkerCommand) = (CandidateIsolation.ChildProcess, CandidateWorker.CommandForThisProgram(WorkerCommand.Name));

        IDataView data;
        string dataName;
        if (parse.GetValue(DatasetOption) is { } folder && Directory.Exists(folder))
        {
            var images = ImageFolderData.Load(ml, folder, parse.GetValue(ImageSizeOption), parse.GetValue(GrayscaleOption));
            Console.WriteLine($"Data: {folder}: {images}");
            (data, options.Featurizer, options.ImageShape, dataName) = (images.Data, images.Featurizer, images.Shape, Path.GetFileName(Path.TrimEndingDirectorySeparator(folder)));
            options.Candidates ??= ImageCandidates(options.Registry, DeepTask.MulticlassClassification);   // the label is a key: multiclass
            options.Trials = parse.GetValue(TrialsOption) ?? 4;
        }
        else if (parse.GetValue(DatasetOption) is { } path)
        {
            var label = parse.GetValue(LabelOption) ?? throw new ArgumentException("--dataset needs --label COLUMN (a name or a 0-based index).");
            var table = TabularData.Load(ml, path, label, Task(parse.GetValue(TaskOption)!), roles: parse.GetValue(ColumnOption),
                imageSize: parse.GetValue(ImageSizeOption), grayscaleImages: parse.GetValue(GrayscaleOption));
            Console.WriteLine($"Data: {path}: {table}");
            foreach (var column in table.Columns) Console.WriteLine($"  {column}");
            if (options.TextColumnName is null && table.TextColumns.Count > 0)
            {
                options.TextColumnName = table.TextColumns[0];
                Console.WriteLine($"  (the pretrained text candidates read '{options.TextColumnName}'; --text chooses another, --column NAME=ROLE overrides a role)");
            }
            (data, options.Featurizer, options.Task, dataName) = (table.Data, table.Featurizer, table.Task, Path.GetFileName(path));
            if (table.ImageShape is { } shape && options.ImageShape is null)
            {
                options.ImageShape = shape;
                options.Candidates ??= ImageCandidates(options.Registry, table.Task);
                Console.WriteLine($"  (the pixels of '{table.ImageColumns[0]}' are a {shape.Channels}×{shape.Height}×{shape.Width} image: the image candidates run; --image-size and --grayscale change it)");
            }
            options.Trials = parse.GetValue(TrialsOption) ?? 4;
        }
        else
        {
            // The embedded default: the 10k Fashion-MNIST split shipped in data/fashion-mnist, images of 1×28×28.
            string dir = FashionMnist.FindDirectory("t10k") ?? throw new FileNotFoundException("The embedded Fashion-MNIST (data/fashion-mnist) was not found; pass --dataset.");
            data = FashionMnist.Load(ml, dir, "t10k");
            dataName = "Fashion-MNIST t10k split (10,000 images)";
            options.ImageShape ??= new ImageShape(1, 28, 28);
            options.Candidates ??= ["LightGBM", "SDCA", "MLP", "CNN"];
            options.Trials = parse.GetValue(TrialsOption) ?? 3;
            Console.WriteLine($"Data: {dataName} from {dir}: 10,000 images, 784 pixels, 10 classes; {string.Join(", ", options.Candidates)}");
        }
        string output = parse.GetValue(OutputOption)!;

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

        Console.WriteLine($"Budget {options.TimeBudget.TotalSeconds:F0} s; candidates one after another" +
                          (options.Isolation == CandidateIsolation.ChildProcess ? ", each in a worker process" : "") + $", {options.NumberOfThreads} thread(s) each" +
                          (options.NumberOfThreads == Environment.ProcessorCount ? " (all cores)" : $" of {Environment.ProcessorCount} cores") + $"; reports -> {Path.GetFullPath(output)}");
        var result = Ui.WithProgress(plain, progress =>
        {
            options.Progress = progress;
            return ml.Deep().Comparison(options).Run(data);
        });
        result.DataName = dataName;

        Console.WriteLine();
        Ui.Leaderboard(result, plain);
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

    // Every candidate that reads pixel vectors or images for the task, but not the FT-Transformer (one token per pixel).
    private static List<string> ImageCandidates(CandidateRegistry registry, DeepTask task) => registry.Candidates
        .Where(f => (f.Inputs & (CandidateInputs.Vector | CandidateInputs.Image)) != 0 && (f.Inputs & (CandidateInputs.Tokens | CandidateInputs.Text)) == 0)
        .Where(f => f.Name != "FT-Transformer" && f.Tasks.Contains(task))
        .Select(f => f.Name).ToList();

    /// <summary>The built-in candidates and the pretrained networks of Microsoft.ML.DeepExtensions.Pretrained (they join where their input is offered); workers use the same.</summary>
    public static CandidateRegistry Registry()
    {
        var registry = CandidateRegistry.CreateDefault();
        foreach (var candidate in PretrainedCandidates.For(PretrainedModels.ResNet18, PretrainedModels.MiniLmL6)) registry.Add(candidate);
        return registry;
    }

    private static Dictionary<string, ColumnRole> Roles(ArgumentResult r)
    {
        var roles = new Dictionary<string, ColumnRole>(StringComparer.OrdinalIgnoreCase);
        foreach (var token in r.Tokens.Select(t => t.Value))
        {
            int eq = token.LastIndexOf('=');
            if (eq > 0 && Enum.TryParse<ColumnRole>(token[(eq + 1)..], ignoreCase: true, out var role) && Enum.IsDefined(role)) roles[token[..eq]] = role;
            else r.AddError($"--column must be NAME=numeric|categorical|text|image|ignore; got '{token}'.");
        }
        return roles;
    }

    private static ImageShape? Shape(ArgumentResult r)
    {
        string s = r.Tokens.Single().Value;
        var p = s.Split('x', '×').Select(x => int.TryParse(x, out int n) && n > 0 ? n : 0).ToArray();
        if (p.Contains(0) || p.Length is not (2 or 3))
        {
            r.AddError($"--image must be HxW or CxHxW; got '{s}'.");
            return null;
        }
        return p.Length == 2 ? new ImageShape(1, p[0], p[1]) : new ImageShape(p[0], p[1], p[2]);
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
