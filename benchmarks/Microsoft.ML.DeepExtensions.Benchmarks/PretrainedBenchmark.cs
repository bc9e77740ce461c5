using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// Transfer learning against training from scratch and against classic ML.NET, on the same split:
/// text — the 20-section Debian package descriptions (80/20, seed 7): fine-tuned all-MiniLM-L6-v2, its frozen embeddings
/// + SDCA, and FeaturizeText + SDCA; images — Fashion-MNIST with only N training images (t10k for testing): fine-tuned
/// ResNet18, its frozen features + SDCA, and the default CNN from scratch.
/// </summary>
internal sealed class PretrainedBenchmark(PretrainedBenchmark.Settings settings)
{
    /// <summary>Command-line settings.</summary>
    public sealed class Settings
    {
        public string Part { get; set; } = "all";
        public int Epochs { get; set; } = 2;
        public int ImageEpochs { get; set; } = 8;
        public int MaxTokens { get; set; } = 64;
        public int Limit { get; set; } = 1000;
        public int Resolution { get; set; } = 112;
        public int? Threads { get; set; }
        public string? DataDirectory { get; set; }
        public string SharedData { get; set; } = Path.Combine("..", "shared", "data");
        public string Output { get; set; } = Path.Combine("benchmarks", "results", "pretrained.md");

        public static Settings Parse(string[] args)
        {
            var s = new Settings();
            Program.ParseOptions(args, "pretrained", (a, Next) =>
            {
                switch (a)
                {
                    case "--part": s.Part = Next() ?? throw new ArgumentException("Option --part needs text, images or all."); break;
                    case "--epochs": s.Epochs = Program.PositiveInt(a, Next()); break;
                    case "--image-epochs": s.ImageEpochs = Program.PositiveInt(a, Next()); break;
                    case "--max-tokens": s.MaxTokens = Program.PositiveInt(a, Next()); break;
                    case "--limit": s.Limit = Program.PositiveInt(a, Next()); break;
                    case "--resolution": s.Resolution = Program.PositiveInt(a, Next()); break;
                    case "--threads": s.Threads = Program.PositiveInt(a, Next()); break;
                    case "--data": s.DataDirectory = Next() ?? throw new ArgumentException("Option --data needs a folder."); break;
                    case "--shared-data": s.SharedData = Next() ?? throw new ArgumentException("Option --shared-data needs a folder."); break;
                    case "--output": s.Output = Next() ?? throw new ArgumentException("Option --output needs a file."); break;
                    default: return false;
                }
                return true;
            });
            if (s.Part is not ("text" or "sms" or "images" or "all")) throw new ArgumentException("Option --part must be text, sms, images or all.");
            return s;
        }
    }

    private sealed class Package
    {
        [LoadColumn(1)] public string Section { get; set; } = "";
        [LoadColumn(3)] public string Description { get; set; } = "";
    }

    private readonly ModelTable _table = new();
    private StringBuilder _report => _table.Report;

    public int Run()
    {
        if (settings.Threads is int t) TorchSharp.torch.set_num_threads(t);
        _report.AppendLine("# Transfer learning: pretrained ResNet18 and all-MiniLM-L6-v2 vs from scratch and classic ML.NET").AppendLine()
            .AppendLine(ModelTable.Machine()).AppendLine()
            .AppendLine($"Command: `dotnet run -c Release --project benchmarks/Microsoft.ML.DeepExtensions.Benchmarks -- pretrained {string.Join(' ', Environment.GetCommandLineArgs().Skip(2))}`").AppendLine();
        if (settings.Part is "text" or "all") Text();
        if (settings.Part is "sms" or "all") Sms();
        if (settings.Part is "images" or "all") Images();
        _table.Write(settings.Output);
        return 0;
    }

    private void Text()
    {
        var ml = new MLContext(seed: 7);
        var data = ml.Data.LoadFromTextFile<Package>(Path.Combine(settings.SharedData, "debian-packages", "packages.tsv"), '\t', hasHeader: true);
        var split = ml.Data.TrainTestSplit(data, 0.2, seed: 7);
        var train = ml.Data.Cache(split.TrainSet);
        long trainRows = train.GetColumn<string>("Section").LongCount(), testRows = split.TestSet.GetColumn<string>("Section").LongCount();
        _report.AppendLine($"## Text: Debian package descriptions, 20 sections ({trainRows:N0} train / {testRows:N0} test rows, split seed 7)").AppendLine()
            .AppendLine("| Model | Micro-accuracy | Macro-accuracy | Train s | s / epoch |").AppendLine("|---|---|---|---|---|");
        var label = ml.Transforms.Conversion.MapValueToKey("Label", "Section");
        _table.Row(ml, "FeaturizeText + SdcaMaximumEntropy", train, split.TestSet,
            label.Append(ml.Transforms.Text.FeaturizeText("Features", "Description")).Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy()));
        _table.Row(ml, "TextEmbeddings (MiniLM, frozen) + SdcaMaximumEntropy", train, split.TestSet,
            label.Append(ml.Deep().TextEmbeddings("Features", "Description", settings.MaxTokens))
                .AppendCacheCheckpoint(ml).Append(ml.Transforms.NormalizeMinMax("Features")).Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy()));
        var options = new PretrainedTransformerTrainer.Options
        {
            Model = PretrainedModels.MiniLmL6, FeatureColumnName = "Description", Epochs = settings.Epochs, MaxTokens = settings.MaxTokens, Seed = 7,
            NumberOfThreads = settings.Threads,
        };
        _table.Row(ml, $"MiniLM fine-tuned ({settings.Epochs} epochs, {settings.MaxTokens} tokens)", train, split.TestSet, label.Append(ml.Deep().PretrainedTransformer(options)));
        _report.AppendLine();
    }

    private sealed class Message
    {
        [LoadColumn(0)] public string Class { get; set; } = "";
        [LoadColumn(1)] public string Text { get; set; } = "";
    }

    private void Sms()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromTextFile<Message>(Path.Combine(settings.SharedData, "sms-spam", "SMSSpamCollection"), '\t', allowQuoting: false);
        var split = ml.Data.TrainTestSplit(data, 0.2, seed: 1);
        long trainRows = split.TrainSet.GetColumn<string>("Class").LongCount(), testRows = split.TestSet.GetColumn<string>("Class").LongCount();
        _report.AppendLine($"## Text: SMS spam ({trainRows:N0} train / {testRows:N0} test messages, split seed 1)").AppendLine()
            .AppendLine("| Model | Accuracy | AUC | Train s | s / epoch |").AppendLine("|---|---|---|---|---|");
        var label = ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, "Class");
        var options = new PretrainedTransformerTrainer.Options
        {
            Model = PretrainedModels.MiniLmL6, FeatureColumnName = "Text", Epochs = settings.Epochs, MaxTokens = settings.MaxTokens, Seed = 1,
            NumberOfThreads = settings.Threads,
        };
        _table.BinaryRow(ml, "FeaturizeText + SdcaLogisticRegression", split.TrainSet, split.TestSet,
            label.Append(ml.Transforms.Text.FeaturizeText("Features", "Text")).Append(ml.BinaryClassification.Trainers.SdcaLogisticRegression()));
        _table.BinaryRow(ml, $"MiniLM fine-tuned ({settings.Epochs} epochs, {settings.MaxTokens} tokens)", split.TrainSet, split.TestSet,
            label.Append(ml.Deep().PretrainedTransformer(options)));
        _report.AppendLine();
    }

    private void Images()
    {
        var ml = new MLContext(seed: 1);
        var train = FashionMnist.Load(ml, settings.DataDirectory, "train", settings.Limit);
        var test = FashionMnist.Load(ml, settings.DataDirectory, "t10k");
        _report.AppendLine($"## Images: Fashion-MNIST, {settings.Limit:N0} training images, 10,000 test images (t10k)").AppendLine()
            .AppendLine("| Model | Micro-accuracy | Macro-accuracy | Train s | s / epoch |").AppendLine("|---|---|---|---|---|");
        var shape = new ImageShape(1, 28, 28);
        _table.Row(ml, "CNN from scratch (default, 5 epochs)", train, test, ml.Deep().Cnn(imageShape: shape, epochs: 5));
        _table.Row(ml, "CNN from scratch (default, 20 epochs)", train, test, ml.Deep().Cnn(imageShape: shape, epochs: 20));
        _table.Row(ml, $"ImageEmbeddings (ResNet18, frozen, {settings.Resolution} px) + SdcaMaximumEntropy", train, test,
            ml.Deep().ImageEmbeddings("Embedding", "Features", shape, resolution: settings.Resolution)
                .AppendCacheCheckpoint(ml).Append(ml.Transforms.NormalizeMinMax("Embedding")).Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(featureColumnName: "Embedding")));
        var options = new PretrainedCnnTrainer.Options
        {
            Model = PretrainedModels.ResNet18, ImageShape = shape, Resolution = settings.Resolution, Epochs = settings.ImageEpochs, Seed = 1,
            NumberOfThreads = settings.Threads,
        };
        _table.Row(ml, $"ResNet18 fine-tuned ({settings.ImageEpochs} epochs, first frozen, {settings.Resolution} px, batch 16, head 3e-3 / backbone 3e-4)", train, test, ml.Deep().PretrainedCnn(options));
        _report.AppendLine();
    }
}
