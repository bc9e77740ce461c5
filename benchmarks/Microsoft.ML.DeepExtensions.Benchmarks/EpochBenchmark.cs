using System.Globalization;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// Seconds per epoch of every family on a fixed slice of real data (Fashion-MNIST for the vector, image and sequence
/// families and the GAN, SMS spam for the token transformer), from each fit's <see cref="TrainingHistory"/>. The first
/// epoch of a fit is warm-up and dropped; the median of the rest is reported. Meant to be run twice — against two builds
/// of the library, interleaved — so that a change to the shared core can be held to "within 5 % of before".
/// </summary>
internal sealed class EpochBenchmark(EpochBenchmark.Settings settings)
{
    /// <summary>Command-line settings.</summary>
    public sealed class Settings
    {
        public int Epochs { get; set; } = 4;
        public int Limit { get; set; } = 4000;
        public int Seed { get; set; } = 42;
        public int? Threads { get; set; }
        public string Families { get; set; } = "all";
        public string? DataDirectory { get; set; }
        public string SharedData { get; set; } = Path.Combine("..", "shared", "data");
        public string? Output { get; set; }

        public static Settings Parse(string[] args)
        {
            var s = new Settings();
            Program.ParseOptions(args, "epochs", (a, Next) =>
            {
                switch (a)
                {
                    case "--epochs": s.Epochs = Program.PositiveInt(a, Next()); break;
                    case "--limit": s.Limit = Program.PositiveInt(a, Next()); break;
                    case "--seed": s.Seed = Program.PositiveInt(a, Next()); break;
                    case "--threads": s.Threads = Program.PositiveInt(a, Next()); break;
                    case "--families": s.Families = Next() ?? throw new ArgumentException("Option --families needs a comma-separated list."); break;
                    case "--data": s.DataDirectory = Next() ?? throw new ArgumentException("Option --data needs a folder."); break;
                    case "--shared-data": s.SharedData = Next() ?? throw new ArgumentException("Option --shared-data needs a folder."); break;
                    case "--output": s.Output = Next() ?? throw new ArgumentException("Option --output needs a file."); break;
                    default: return false;
                }
                return true;
            });
            if (s.Epochs < 2) throw new ArgumentException("Option --epochs needs at least 2 (the first epoch is warm-up).");
            return s;
        }
    }

    private static readonly string[] AllFamilies = ["perceptron", "mlp", "cnn", "lstm", "transformer", "ft-transformer", "gan"];

    public int Run()
    {
        var ml = new MLContext(seed: settings.Seed);
        var fashion = FashionMnist.Load(ml, settings.DataDirectory, "train", settings.Limit);
        // 49 features (every 16th pixel) keep the FT-Transformer's one-token-per-feature attention affordable; the
        // perceptron (binary) learns "is it footwear" (sandal, sneaker, ankle boot: keys 6, 8, 10).
        var coarse = ml.Transforms.CustomMapping<PixelsRow, CoarseRow>((src, dst) =>
            {
                dst.Coarse = Enumerable.Range(0, 49).Select(i => src.Features[i * 16]).ToArray();
                dst.Footwear = src.Label is 6 or 8 or 10;
            }, null)
            .Fit(fashion).Transform(fashion);
        string[] families = settings.Families == "all" ? AllFamilies : settings.Families.Split(',');
        var lines = new StringBuilder();
        foreach (string family in families)
        {
            var (history, model) = Fit(ml, family, fashion, coarse);
            using var _ = model;
            var seconds = history.Epochs.Skip(1).Select(e => e.Seconds).OrderBy(s => s).ToArray();
            double median = seconds.Length % 2 == 1 ? seconds[seconds.Length / 2] : (seconds[seconds.Length / 2 - 1] + seconds[seconds.Length / 2]) / 2;
            string line = string.Create(CultureInfo.InvariantCulture, $"{family}\t{median:F4}\t{string.Join(",", seconds.Select(s => s.ToString("F4", CultureInfo.InvariantCulture)))}");
            Console.WriteLine(line);
            lines.AppendLine(line);
        }
        if (settings.Output is { } output) File.AppendAllText(output, lines.ToString());
        return 0;
    }

    private (TrainingHistory History, IDisposable Model) Fit(MLContext ml, string family, IDataView fashion, IDataView coarse)
    {
        int epochs = settings.Epochs, seed = settings.Seed;
        int? threads = settings.Threads;
        switch (family)
        {
            case "perceptron":
                return Wrap(ml.Deep().Perceptron(new PerceptronTrainer.Options { Epochs = epochs, Seed = seed, NumberOfThreads = threads, ValidationFraction = 0, LabelColumnName = "Footwear" }).Fit(coarse));
            case "mlp":
                return Wrap(ml.Deep().Mlp(new MlpTrainer.Options { Epochs = epochs, Seed = seed, NumberOfThreads = threads, ValidationFraction = 0 }).Fit(fashion));
            case "cnn":
                return Wrap(ml.Deep().Cnn(new CnnTrainer.Options { Epochs = epochs, Seed = seed, NumberOfThreads = threads, ValidationFraction = 0, ImageShape = new ImageShape(1, 28, 28) }).Fit(fashion));
            case "lstm":
                return Wrap(ml.Deep().Lstm(new LstmTrainer.Options { Epochs = epochs, Seed = seed, NumberOfThreads = threads, ValidationFraction = 0, SequenceShape = new SequenceShape(28, 28) }).Fit(fashion));
            case "ft-transformer":
                return Wrap(ml.Deep().FtTransformer(new FtTransformerTrainer.Options { Epochs = epochs, Seed = seed, NumberOfThreads = threads, ValidationFraction = 0, FeatureColumnName = "Coarse" }).Fit(coarse));
            case "transformer":
                var sms = ml.Data.LoadFromTextFile<SmsRow>(Path.Combine(settings.SharedData, "sms-spam", "SMSSpamCollection"), separatorChar: '\t', hasHeader: false, allowQuoting: false);
                var tokens = ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, "Class")
                    .Append(ml.Transforms.Text.NormalizeText("Normalized", "Text"))
                    .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
                    .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"));
                var text = tokens.Fit(sms).Transform(sms);
                return Wrap(ml.Deep().Transformer(new TransformerTrainer.Options { Epochs = epochs, Seed = seed, NumberOfThreads = threads, ValidationFraction = 0, FeatureColumnName = "Tokens" }).Fit(text));
            case "gan":
                var gan = new GanTrainer(ml, new GanTrainer.Options { Epochs = epochs, Seed = seed, NumberOfThreads = threads, LabelColumnName = "Label", ImageShape = new ImageShape(1, 28, 28) }).Fit(fashion);
                return (gan.History, gan);
            default:
                throw new ArgumentException($"Unknown family '{family}'; expected one of {string.Join(", ", AllFamilies)}.");
        }
    }

    private static (TrainingHistory History, IDisposable Model) Wrap(DeepTransformer model) => (model.History, model);

    private sealed class PixelsRow
    {
        [KeyType(10)] public uint Label { get; set; }
        [VectorType(784)] public float[] Features { get; set; } = [];
    }

    private sealed class CoarseRow
    {
        [VectorType(49)] public float[] Coarse { get; set; } = [];
        public bool Footwear { get; set; }
    }

    private sealed class SmsRow
    {
        [LoadColumn(0)] public string Class { get; set; } = "";
        [LoadColumn(1)] public string Text { get; set; } = "";
    }
}
