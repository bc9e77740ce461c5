using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Models;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// Sequence generation on real data against the baselines a user would try first:
/// many-to-many — Debian package summaries generated from their descriptions (80/20 split, seed 7), ROUGE-L F1 on the test
/// split against "the first N words of the description" with N tuned on the training split;
/// one-to-many — SMS messages generated for a class (ham/spam), judged by our own SMS classifier (an MLP on FeaturizeText
/// trained on the same training split), with the share of generated messages that copy a training message.
/// </summary>
internal sealed class GenerationBenchmark(GenerationBenchmark.Settings settings)
{
    /// <summary>Command-line settings.</summary>
    public sealed class Settings
    {
        public string Part { get; set; } = "all";
        public int Epochs { get; set; } = 6;
        public bool Transformer { get; set; }
        public int Messages { get; set; } = 1000;
        public int? Limit { get; set; }
        public int? Threads { get; set; }
        public string SharedData { get; set; } = Path.Combine("..", "shared", "data");
        public string Output { get; set; } = Path.Combine("benchmarks", "results", "generation.md");

        public static Settings Parse(string[] args)
        {
            var s = new Settings();
            Program.ParseOptions(args, "generation", (a, Next) =>
            {
                switch (a)
                {
                    case "--part": s.Part = Next() ?? throw new ArgumentException("Option --part needs summaries, sms or all."); break;
                    case "--epochs": s.Epochs = Program.PositiveInt(a, Next()); break;
                    case "--transformer": s.Transformer = true; break;
                    case "--messages": s.Messages = Program.PositiveInt(a, Next()); break;
                    case "--limit": s.Limit = Program.PositiveInt(a, Next()); break;
                    case "--threads": s.Threads = Program.PositiveInt(a, Next()); break;
                    case "--shared-data": s.SharedData = Next() ?? throw new ArgumentException("Option --shared-data needs a folder."); break;
                    case "--output": s.Output = Next() ?? throw new ArgumentException("Option --output needs a file."); break;
                    default: return false;
                }
                return true;
            });
            if (s.Part is not ("summaries" or "sms" or "all")) throw new ArgumentException("Option --part must be summaries, sms or all.");
            return s;
        }
    }

    private sealed class Package
    {
        [LoadColumn(2)] public string Summary { get; set; } = "";
        [LoadColumn(3)] public string Description { get; set; } = "";
    }

    private sealed class Message
    {
        [LoadColumn(0)] public string Class { get; set; } = "";
        [LoadColumn(1)] public string Text { get; set; } = "";
    }

    private sealed class ClassOnly { public string Class { get; set; } = ""; }

    private readonly ModelTable _table = new();
    private StringBuilder Report => _table.Report;

    public int Run()
    {
        if (settings.Threads is int t) TorchSharp.torch.set_num_threads(t);
        Report.AppendLine("# Sequence generation: Debian summaries from descriptions, SMS messages for a class").AppendLine()
            .AppendLine(ModelTable.Machine()).AppendLine()
            .AppendLine($"Command: `dotnet run -c Release --project benchmarks/Microsoft.ML.DeepExtensions.Benchmarks -- generation {string.Join(' ', Environment.GetCommandLineArgs().Skip(2))}`").AppendLine();
        if (settings.Part is "summaries" or "all") Summaries();
        if (settings.Part is "sms" or "all") Sms();
        _table.Write(settings.Output);
        return 0;
    }

    private IDataView Limit(MLContext ml, IDataView data) => settings.Limit is int n ? ml.Data.TakeRows(data, n) : data;

    private void Summaries()
    {
        var ml = new MLContext(seed: 7);
        var data = Limit(ml, ml.Data.LoadFromTextFile<Package>(Path.Combine(settings.SharedData, "debian-packages", "packages.tsv"), '\t', hasHeader: true, allowQuoting: false));
        var split = ml.Data.TrainTestSplit(data, 0.2, seed: 7);
        var train = ml.Data.CreateEnumerable<Package>(split.TrainSet, false).ToList();
        var test = ml.Data.CreateEnumerable<Package>(split.TestSet, false).ToList();
        Report.AppendLine($"## Many-to-many: Debian package Summary from Description ({train.Count:N0} train / {test.Count:N0} test, split seed 7)").AppendLine()
            .AppendLine("ROUGE-L F1 (longest common subsequence of lower-cased words and punctuation, mean over test rows).").AppendLine()
            .AppendLine("| Model | ROUGE-L F1 | Mean words | Train s | s / epoch |").AppendLine("|---|---|---|---|---|");

        // Baseline: the first N words of the description, N tuned on the training split.
        int bestN = Enumerable.Range(1, 20).MaxBy(n => train.Average(p => RougeL(First(p.Description, n), p.Summary)));
        var baseline = test.Select(p => First(p.Description, bestN)).ToList();
        Row($"First {bestN} words of the description (N tuned on train)", test.Select(p => p.Summary), baseline, 0, "–");

        var recurrent = new SequenceGeneratorTrainer.Options { Epochs = settings.Epochs, Seed = 7, Verbose = true };
        var transformer = new SequenceGeneratorTrainer.Options
        {
            Architecture = GeneratorArchitecture.Transformer, HiddenSize = 128, Layers = 2, Epochs = settings.Epochs, Seed = 7, Verbose = true,
        };
        var (greedy, beam) = Summarize(ml, split, test, $"Seq2Seq GRU + attention + copy (embeddings {recurrent.EmbeddingSize}, hidden {recurrent.HiddenSize}, {recurrent.Epochs} epochs)", recurrent);
        if (settings.Transformer) Summarize(ml, split, test, $"Seq2Seq transformer (d {transformer.HiddenSize}, {transformer.Layers} + {transformer.Layers} layers, {transformer.Heads} heads, {transformer.Epochs} epochs)", transformer);
        Report.AppendLine().AppendLine("Examples (test rows): reference → baseline | GRU greedy | GRU beam 4").AppendLine();
        foreach (int i in new[] { 0, 1, 2, 3, 4, 5 }.Where(i => i < test.Count))
            Report.AppendLine($"- {test[i].Summary} → {baseline[i]} | {greedy[i]} | {beam[i]}");
        Report.AppendLine();
    }

    /// <summary>Trains a summarizer, then scores the test rows greedily and with beam search (width 4): two rows; returns both outputs.</summary>
    private (List<string> Greedy, List<string> Beam) Summarize(MLContext ml, DataOperationsCatalog.TrainTestData split, List<Package> test, string name, SequenceGeneratorTrainer.Options generatorOptions)
    {
        var options = new TextGenerator.Options { SourceColumnName = "Description", TargetColumnName = "Summary", Generator = generatorOptions };
        Console.WriteLine($"[{DateTime.Now:HH:mm:ss}] {name} ...");
        var watch = Stopwatch.StartNew();
        var model = ml.Deep().TextGenerator(options).Fit(split.TrainSet);
        double seconds = watch.Elapsed.TotalSeconds;
        var generator = ((IEnumerable<ITransformer>)model).OfType<DeepTransformer>().Single();
        var perEpoch = string.Join(" / ", generator.History.Epochs.Select(e => e.Seconds.ToString("F0", CultureInfo.InvariantCulture)));
        var greedy = model.Transform(split.TestSet).GetColumn<string>("GeneratedText").ToList();
        Row($"{name}, greedy", test.Select(p => p.Summary), greedy, seconds, perEpoch);
        ((SequenceGeneratorSpec)generator.Spec).Decoding = new Decoding { BeamWidth = 4 };
        var beam = model.Transform(split.TestSet).GetColumn<string>("GeneratedText").ToList();
        Row("the same model, beam search (width 4, length penalty 1)", test.Select(p => p.Summary), beam, 0, "–");
        return (greedy, beam);
    }

    private void Row(string name, IEnumerable<string> references, IReadOnlyList<string> outputs, double seconds, string perEpoch)
    {
        var refs = references.ToList();
        double rouge = refs.Select((r, i) => RougeL(outputs[i], r)).Average();
        double words = outputs.Average(o => TextGenerator.Split(o).Length);
        string line = $"| {name} | {rouge:F4} | {words:F1} | {(seconds > 0 ? seconds.ToString("F0", CultureInfo.InvariantCulture) : "–")} | {perEpoch} |";
        Console.WriteLine(line);
        Report.AppendLine(line);
    }

    private static string First(string text, int n) => TextGenerator.Join(TextGenerator.Split(text).Take(n));

    /// <summary>ROUGE-L F1 of a candidate against a reference: LCS over lower-cased words and punctuation.</summary>
    internal static double RougeL(string candidate, string reference)
    {
        var c = TextGenerator.Split(candidate);
        var r = TextGenerator.Split(reference);
        if (c.Length == 0 || r.Length == 0) return 0;
        var lcs = new int[c.Length + 1, r.Length + 1];
        for (int i = 1; i <= c.Length; i++)
            for (int j = 1; j <= r.Length; j++)
                lcs[i, j] = c[i - 1] == r[j - 1] ? lcs[i - 1, j - 1] + 1 : Math.Max(lcs[i - 1, j], lcs[i, j - 1]);
        double l = lcs[c.Length, r.Length];
        if (l == 0) return 0;
        double p = l / c.Length, rec = l / r.Length;
        return 2 * p * rec / (p + rec);
    }

    private void Sms()
    {
        var ml = new MLContext(seed: 1);
        var data = Limit(ml, ml.Data.LoadFromTextFile<Message>(Path.Combine(settings.SharedData, "sms-spam", "SMSSpamCollection"), '\t', allowQuoting: false));
        var split = ml.Data.TrainTestSplit(data, 0.2, seed: 1);
        var train = ml.Data.CreateEnumerable<Message>(split.TrainSet, false).ToList();
        Report.AppendLine($"## One-to-many: SMS messages generated for a class ({train.Count:N0} training messages, split seed 1)").AppendLine();

        // Our own SMS classifier, on the same training split.
        var label = ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, "Class");
        var classifier = label.Append(ml.Transforms.Text.FeaturizeText("Features", "Text"))
            .Append(ml.Deep().Mlp(new MlpTrainer.Options { HiddenLayers = [128], Epochs = 5, Seed = 1 }))
            .Fit(split.TrainSet);
        var check = ml.BinaryClassification.Evaluate(classifier.Transform(split.TestSet));
        Report.AppendLine($"Judge: MlpTrainer on FeaturizeText, test accuracy {check.Accuracy:F4} (AUC {check.AreaUnderRocCurve:F4}) on {split.TestSet.GetColumn<string>("Class").Count():N0} real test messages.").AppendLine();

        var options = new TextGenerator.Options
        {
            ConditionColumnName = "Class", TargetColumnName = "Text",
            Generator = new SequenceGeneratorTrainer.Options
            {
                Epochs = settings.Epochs, Seed = 1, MaxOutputLength = 32, Verbose = true,
                Decoding = new Decoding { Temperature = 0.8, TopK = 40, Seed = 1 },
            },
        };
        var watch = Stopwatch.StartNew();
        var model = ml.Deep().TextGenerator(options).Fit(split.TrainSet);
        double seconds = watch.Elapsed.TotalSeconds;
        var generator = ((IEnumerable<ITransformer>)model).OfType<DeepTransformer>().Single();
        var requests = Enumerable.Range(0, settings.Messages).Select(i => new ClassOnly { Class = i % 2 == 0 ? "spam" : "ham" }).ToList();
        var texts = model.Transform(ml.Data.LoadFromEnumerable(requests)).GetColumn<string>("GeneratedText").ToList();
        var judged = classifier.Transform(ml.Data.LoadFromEnumerable(requests.Select((r, i) => new Message { Class = r.Class, Text = texts[i] })))
            .GetColumn<bool>("PredictedLabel").ToList();
        var seen = train.Select(m => TextGenerator.Join(TextGenerator.Split(m.Text))).ToHashSet();
        Report.AppendLine($"Generator: GRU decoder conditioned on the class (hidden {options.Generator.HiddenSize}), {options.Generator.Epochs} epochs, {seconds:F0} s " +
                          $"({string.Join(" / ", generator.History.Epochs.Select(e => e.Seconds.ToString("F0", CultureInfo.InvariantCulture)))} s per epoch); " +
                          "sampling at temperature 0.8 from the 40 most likely words, seed 1.").AppendLine()
            .AppendLine("| Generated for | Messages | Judged as that class | Exact copies of a training message | Distinct messages |").AppendLine("|---|---|---|---|---|");
        foreach (var cls in new[] { "spam", "ham" })
        {
            var rows = Enumerable.Range(0, requests.Count).Where(i => requests[i].Class == cls).ToList();
            double agree = rows.Average(i => judged[i] == (cls == "spam") ? 1.0 : 0.0);
            double copies = rows.Average(i => seen.Contains(texts[i]) ? 1.0 : 0.0);
            int distinct = rows.Select(i => texts[i]).Distinct().Count();
            Report.AppendLine($"| {cls} | {rows.Count:N0} | {agree:P1} | {copies:P1} | {distinct:N0} |");
        }
        double all = Enumerable.Range(0, requests.Count).Average(i => judged[i] == (requests[i].Class == "spam") ? 1.0 : 0.0);
        Report.AppendLine($"| all | {requests.Count:N0} | **{all:P1}** | {Enumerable.Range(0, requests.Count).Average(i => seen.Contains(texts[i]) ? 1.0 : 0.0):P1} | {texts.Distinct().Count():N0} |").AppendLine()
            .AppendLine("Examples: " + string.Join("; ", Enumerable.Range(0, 8).Select(i => $"[{requests[i].Class}] \"{texts[i]}\""))).AppendLine();
    }
}
