using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// Image models trained from scratch on the same Fashion-MNIST split (all 60,000 training images by default, t10k for
/// testing): the default CNN, the CNN's <see cref="CnnTrainer.Options.HighAccuracy"/> preset and the vision transformer —
/// accuracy, Fit time and seconds per epoch, measured in one run so the times compare.
/// </summary>
internal sealed class VisionBenchmark(VisionBenchmark.Settings settings)
{
    /// <summary>Command-line settings.</summary>
    public sealed class Settings
    {
        public string Models { get; set; } = "cnn,cnn-preset,vit";
        public int CnnEpochs { get; set; } = 5;
        public int? PresetEpochs { get; set; }
        public int VitEpochs { get; set; } = 15;
        public int? Limit { get; set; }
        public int? Threads { get; set; }
        public string? DataDirectory { get; set; }
        public string Output { get; set; } = Path.Combine("benchmarks", "results", "vision-fashion-mnist.md");

        public static Settings Parse(string[] args)
        {
            var s = new Settings();
            Program.ParseOptions(args, "vision", (a, Next) =>
            {
                switch (a)
                {
                    case "--models": s.Models = Next() ?? throw new ArgumentException("Option --models needs a list of cnn, cnn-preset, vit, vit-stem."); break;
                    case "--cnn-epochs": s.CnnEpochs = Program.PositiveInt(a, Next()); break;
                    case "--preset-epochs": s.PresetEpochs = Program.PositiveInt(a, Next()); break;
                    case "--vit-epochs": s.VitEpochs = Program.PositiveInt(a, Next()); break;
                    case "--limit": s.Limit = Program.PositiveInt(a, Next()); break;
                    case "--threads": s.Threads = Program.PositiveInt(a, Next()); break;
                    case "--data": s.DataDirectory = Next() ?? throw new ArgumentException("Option --data needs a folder."); break;
                    case "--output": s.Output = Next() ?? throw new ArgumentException("Option --output needs a file."); break;
                    default: return false;
                }
                return true;
            });
            var unknown = s.Models.Split(',').Except(["cnn", "cnn-preset", "vit", "vit-stem"]).ToList();
            if (unknown.Count > 0) throw new ArgumentException($"Option --models: unknown model(s) {string.Join(", ", unknown)}; use cnn, cnn-preset, vit, vit-stem.");
            return s;
        }
    }

    public int Run()
    {
        if (settings.Threads is int t) TorchSharp.torch.set_num_threads(t);
        var ml = new MLContext(seed: 1);
        var train = FashionMnist.Load(ml, settings.DataDirectory, "train", settings.Limit);
        var test = FashionMnist.Load(ml, settings.DataDirectory, "t10k");
        long rows = train.GetColumn<uint>("Label").LongCount();
        var table = new ModelTable();
        table.Report.AppendLine("# Images from scratch: default CNN, CNN preset and vision transformer on Fashion-MNIST").AppendLine()
            .AppendLine(ModelTable.Machine()).AppendLine()
            .AppendLine($"Command: `dotnet run -c Release --project benchmarks/Microsoft.ML.DeepExtensions.Benchmarks -- vision {string.Join(' ', Environment.GetCommandLineArgs().Skip(2))}`").AppendLine()
            .AppendLine($"{rows:N0} training images, 10,000 test images (t10k); seed 1.").AppendLine()
            .AppendLine("| Model | Micro-accuracy | Macro-accuracy | Train s | s / epoch |").AppendLine("|---|---|---|---|---|");
        var shape = new ImageShape(1, 28, 28);
        var models = settings.Models.Split(',');
        foreach (bool stem in new[] { false, true }.Where(s => models.Contains(s ? "vit-stem" : "vit")))
        {
            // Clothes mirror well: flips on top of the default shifts, as the CNN preset has them.
            var vit = new VitTrainer.Options { ImageShape = shape, Seed = 1, Augmentation = new() { MaxShift = 2, HorizontalFlip = true }, ConvolutionalStem = stem };
            vit.Epochs = settings.VitEpochs;
            string kind = stem ? "ViT, convolutional stem" : "ViT default";
            table.Row(ml, $"{kind} ({vit.PatchSize}×{vit.PatchSize} patches, {vit.Layers} layers, d {vit.Dimension}, {vit.Epochs} epochs, shifts + flips)", train, test, ml.Deep().Vit(vit));
        }
        if (models.Contains("cnn-preset"))
        {
            var preset = CnnTrainer.Options.HighAccuracy();
            preset.ImageShape = shape;
            preset.Epochs = settings.PresetEpochs ?? preset.Epochs;
            preset.Seed = 1;
            table.Row(ml, $"CNN HighAccuracy preset ({preset.Epochs} epochs)", train, test, ml.Deep().Cnn(preset));
        }
        if (models.Contains("cnn"))
            table.Row(ml, $"CNN default ({settings.CnnEpochs} epochs)", train, test, ml.Deep().Cnn(imageShape: shape, epochs: settings.CnnEpochs));
        table.Write(settings.Output);
        return 0;
    }
}
