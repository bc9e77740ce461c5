using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.DeepExtensions.Models;
using TorchSharp;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// The GAN quality run: (1) Fashion-MNIST, conditional DCGAN — a CnnTrainer CNN trained on the real training images
/// labels 1,000 generated images per class, and a Fréchet distance on its penultimate features is compared with the
/// real-vs-real distance; (2) UCI Adult, conditional MLP GAN — train-on-synthetic/test-on-real accuracy against
/// train-on-real with the same classifier (LightGBM); (3) optdigits — a GAN trained on digits 0–8 scores held-out digits,
/// AUC of 0–8 (real) against 9 (unseen).
/// </summary>
internal sealed class GanBenchmark(GanBenchmark.Settings settings)
{
    /// <summary>Command-line settings.</summary>
    public sealed class Settings
    {
        public string Part { get; set; } = "all";
        public int GanEpochs { get; set; } = 10;
        public int CnnEpochs { get; set; } = 5;
        public int? Limit { get; set; }
        public int Seed { get; set; } = 42;
        public int? Threads { get; set; }
        public string? DataDirectory { get; set; }
        public string SharedData { get; set; } = Path.Combine("..", "shared", "data");
        public string CommandLine { get; set; } = "";
        public string? Output { get; set; }

        public static Settings Parse(string[] args)
        {
            var s = new Settings { CommandLine = string.Join(" ", args) };
            Program.ParseOptions(args, "gan", (a, Next) =>
            {
                switch (a)
                {
                    case "--part":
                        s.Part = Next() ?? "";
                        if (s.Part is not ("fashion" or "adult" or "digits" or "all")) throw new ArgumentException("Option --part takes fashion, adult, digits or all.");
                        break;
                    case "--epochs": s.GanEpochs = Program.PositiveInt(a, Next()); break;
                    case "--cnn-epochs": s.CnnEpochs = Program.PositiveInt(a, Next()); break;
                    case "--limit": s.Limit = Program.PositiveInt(a, Next()); break;
                    case "--seed": s.Seed = Program.PositiveInt(a, Next()); break;
                    case "--threads": s.Threads = Program.PositiveInt(a, Next()); break;
                    case "--data": s.DataDirectory = Next() ?? throw new ArgumentException("Option --data needs a folder."); break;
                    case "--shared-data": s.SharedData = Next() ?? throw new ArgumentException("Option --shared-data needs a folder."); break;
                    case "--output": s.Output = Next() ?? throw new ArgumentException("Option --output needs a file or '-'."); break;
                    default: return false;
                }
                return true;
            });
            return s;
        }
    }

    private readonly StringBuilder _report = new();

    private void Line(string text = "")
    {
        Console.WriteLine(text);
        _report.AppendLine(text);
    }

    public int Run()
    {
        var watch = Stopwatch.StartNew();
        Line("# GAN quality run");
        Line();
        Line($"`gan {settings.CommandLine}` · {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC · {Environment.ProcessorCount} cores · load average {MachineInfo.LoadAverage()} · TorchSharp {typeof(torch).Assembly.GetName().Version}");
        Line();
        if (settings.Part is "all" or "fashion") Fashion();
        if (settings.Part is "all" or "adult") Adult();
        if (settings.Part is "all" or "digits") Digits();
        Line($"Total {watch.Elapsed.TotalMinutes:F1} min (machine shared with other jobs: times are not benchmarks).");
        string output = settings.Output ?? Path.Combine("benchmarks", "results", "gan.md");
        if (output != "-")
        {
            File.WriteAllText(output, _report.ToString());
            Console.WriteLine($"Wrote {output}");
        }
        return 0;
    }

    private GanTrainer.Options Options(GanTrainer.Options o)
    {
        o.Seed = settings.Seed;
        o.NumberOfThreads = settings.Threads;
        o.Verbose = true;
        return o;
    }

    private void Fashion()
    {
        var ml = new MLContext(seed: settings.Seed);
        string dir = settings.DataDirectory ?? FashionMnist.FindDirectory("train") ?? throw new ArgumentException("Fashion-MNIST not found; give --data.");
        var train = ml.Data.Cache(FashionMnist.Load(ml, dir, "train", settings.Limit));
        var test = ml.Data.Cache(FashionMnist.Load(ml, dir, "t10k"));
        long n = train.GetRowCount() ?? 0;
        Line($"## Fashion-MNIST, conditional DCGAN ({n:N0} training images)");
        Line();

        var judge = ml.Deep().Cnn(new CnnTrainer.Options { Epochs = settings.CnnEpochs, Seed = settings.Seed, NumberOfThreads = settings.Threads, Verbose = true }).Fit(train);
        double judgeAccuracy = ml.MulticlassClassification.Evaluate(judge.Transform(test)).MicroAccuracy;

        var watch = Stopwatch.StartNew();
        var gan = ml.Deep().Gan(Options(new GanTrainer.Options
        {
            LabelColumnName = "Label", ImageShape = new ImageShape(1, FashionMnist.Side, FashionMnist.Side), Epochs = settings.GanEpochs,
        })).Fit(train);
        double ganMinutes = watch.Elapsed.TotalMinutes;

        const int perClass = 1000;
        var featurizer = judge.Featurizer("Embedding");
        var generatedEmbeddings = new List<float[]>();
        Line($"Judge: CnnTrainer default network, {settings.CnnEpochs} epochs on the real training images, test accuracy {judgeAccuracy:P2}.");
        Line($"GAN: {gan.Spec.Family}, generator filters [{string.Join(", ", gan.Spec.GeneratorFilters)}], discriminator filters [{string.Join(", ", gan.Spec.DiscriminatorFilters)}], latent {gan.Spec.LatentSize}, {settings.GanEpochs} epochs, batch 64, Adam 2e-4 β1 0.5, label smoothing 0.1; {ganMinutes:F1} min under load.");
        Line();
        Line("| class | generated | labelled as the requested class |");
        Line("|---|---:|---:|");
        long correct = 0;
        for (int k = 0; k < FashionMnist.ClassNames.Count; k++)
        {
            var generated = gan.Generate(perClass, seed: settings.Seed + k, classIndex: k);
            var predicted = judge.Transform(generated).GetColumn<uint>("PredictedLabel").ToArray();
            int hits = predicted.Count(p => p == k + 1);
            correct += hits;
            Line($"| {FashionMnist.ClassNames[k]} | {perClass} | {hits / (double)perClass:P1} |");
            generatedEmbeddings.AddRange(featurizer.Transform(generated).GetColumn<float[]>("Embedding"));
        }
        double accuracy = correct / (double)(perClass * FashionMnist.ClassNames.Count);
        Line($"| **all** | {perClass * FashionMnist.ClassNames.Count} | **{accuracy:P2}** (target ≥ 80 %) |");
        Line();

        var testEmbeddings = featurizer.Transform(test).GetColumn<float[]>("Embedding").ToList();
        var trainEmbeddings = featurizer.Transform(train).GetColumn<float[]>("Embedding").Take(testEmbeddings.Count).ToList();
        double fid = GanMetrics.FrechetDistance(generatedEmbeddings, testEmbeddings);
        double floor = GanMetrics.FrechetDistance(trainEmbeddings, testEmbeddings);
        Line($"Fréchet distance on the judge's penultimate features ({testEmbeddings[0].Length} values): generated vs real test {fid:F2}; real train vs real test (floor, {trainEmbeddings.Count:N0} vs {testEmbeddings.Count:N0}) {floor:F2}; ratio {fid / floor:F1}.");
        Line();
        Line("Losses per epoch (generator / discriminator): " + string.Join(", ", gan.History.Epochs.Select(e => $"{e.Losses!["generator"]:F3} / {e.Losses["discriminator"]:F3}")));
        Line();
        string grid = Path.Combine("benchmarks", "results", "gan-fashion-mnist.png");
        gan.SaveImageGrid(grid, perClass: 10, seed: settings.Seed);
        Line($"![generated samples, one row per class]({Path.GetFileName(grid)})");
        Line();
    }

    private sealed class AdultRow
    {
        [LoadColumn(0)] public float Age { get; set; }
        [LoadColumn(1)] public string WorkClass { get; set; } = "";
        [LoadColumn(2)] public float Fnlwgt { get; set; }
        [LoadColumn(3)] public string Education { get; set; } = "";
        [LoadColumn(4)] public float EducationNum { get; set; }
        [LoadColumn(5)] public string MaritalStatus { get; set; } = "";
        [LoadColumn(6)] public string Occupation { get; set; } = "";
        [LoadColumn(7)] public string Relationship { get; set; } = "";
        [LoadColumn(8)] public string Ethnicity { get; set; } = "";
        [LoadColumn(9)] public string Sex { get; set; } = "";
        [LoadColumn(10)] public float CapitalGain { get; set; }
        [LoadColumn(11)] public float CapitalLoss { get; set; }
        [LoadColumn(12)] public float HoursPerWeek { get; set; }
        [LoadColumn(13)] public string NativeCountry { get; set; } = "";
        [LoadColumn(14)] public bool Label { get; set; }
    }

    private void Adult()
    {
        var ml = new MLContext(seed: settings.Seed);
        var data = ml.Data.LoadFromTextFile<AdultRow>(Path.Combine(settings.SharedData, "adult", "adult.csv"), separatorChar: ',', hasHeader: true, trimWhitespace: true);
        var split = ml.Data.TrainTestSplit(data, 0.2, seed: settings.Seed);
        string[] categorical = ["WorkClass", "Education", "MaritalStatus", "Occupation", "Relationship", "Ethnicity", "Sex", "NativeCountry"];
        string[] numeric = ["Age", "Fnlwgt", "EducationNum", "CapitalGain", "CapitalLoss", "HoursPerWeek"];
        var prep = ml.Transforms.Categorical.OneHotEncoding(categorical.Select(c => new InputOutputColumnPair(c)).ToArray())
            .Append(ml.Transforms.Concatenate("Features", [.. numeric, .. categorical]))
            .Append(ml.Transforms.Conversion.MapValueToKey("Class", "Label"))
            .Fit(split.TrainSet);
        var train = ml.Data.Cache(prep.Transform(split.TrainSet));
        var test = ml.Data.Cache(prep.Transform(split.TestSet));
        long rows = train.GetRowCount() ?? 0;
        Line($"## UCI Adult, conditional MLP GAN ({rows:N0} training rows, {test.GetRowCount():N0} test rows)");
        Line();
        var gan = ml.Deep().Gan(Options(new GanTrainer.Options { LabelColumnName = "Class", Epochs = Math.Max(settings.GanEpochs, 15), BatchSize = 128 })).Fit(train);
        var synthetic = gan.Generate((int)rows, seed: settings.Seed);
        var classifier = ml.Transforms.Conversion.MapKeyToValue("Label", "Class")
            .Append(ml.BinaryClassification.Trainers.LightGbm(new Microsoft.ML.Trainers.LightGbm.LightGbmBinaryTrainer.Options { Seed = settings.Seed }));
        double real = ml.BinaryClassification.Evaluate(classifier.Fit(train).Transform(test)).Accuracy;
        double synth = ml.BinaryClassification.Evaluate(classifier.Fit(synthetic).Transform(test)).Accuracy;
        Line($"LightGBM (defaults) tested on the real test rows: train-on-real {real:P2}, train-on-synthetic ({rows:N0} generated rows, classes by the training frequencies) {synth:P2}; gap {(real - synth) * 100:F2} points (target ≤ 5). GAN: {gan.History.Epochs.Count} epochs.");
        Line();
    }

    private sealed class DigitRow
    {
        [LoadColumn(0, 63), VectorType(64)] public float[] Features { get; set; } = [];
        [LoadColumn(64)] public float Digit { get; set; }
    }

    private sealed class ScoredDigit
    {
        [VectorType(64)] public float[] Features { get; set; } = [];
        public bool Label { get; set; }
    }

    private void Digits()
    {
        var ml = new MLContext(seed: settings.Seed);
        IDataView Load(string split, bool withNines) => ml.Data.LoadFromEnumerable(
            ml.Data.CreateEnumerable<DigitRow>(ml.Data.LoadFromTextFile<DigitRow>(Path.Combine(settings.SharedData, "optdigits", $"optdigits-{split}.csv"), separatorChar: ','), reuseRowObject: false)
                .Where(r => withNines || r.Digit != 9).Select(r => new ScoredDigit { Features = r.Features, Label = r.Digit != 9 }));
        Line("## optdigits, anomaly score");
        Line();
        var gan = ml.Deep().Gan(Options(new GanTrainer.Options { Epochs = 30, LabelSmoothing = 0 })).Fit(Load("train", false));
        var scored = gan.Transform(Load("test", true));
        double auc = GanMetrics.AreaUnderRocCurve(scored.GetColumn<float>("Score").ToArray(), scored.GetColumn<bool>("Label").ToArray());
        Line($"Unconditional MLP GAN on the 0–8 training digits (30 epochs, no label smoothing); discriminator score on the 1,797 test digits: AUC of 0–8 (real) vs 9 (unseen) = {auc:F4} (target ≥ 0.7).");
        Line();
    }
}
