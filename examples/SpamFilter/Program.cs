// SMS spam filter: raw text -> ML.NET tokenisation -> a transformer trained from scratch -> model.zip -> spam or ham.
//
// `train` reads the UCI SMS Spam Collection (tab-separated "ham"/"spam" then the message), trains
// mlContext.Deep().Transformer on 80 % of it, evaluates on the other 20 %, prints which words the [CLS] token attends
// to in a few test messages, and saves the whole chain (tokeniser + transformer) to model.zip.
// `predict` loads model.zip in a fresh MLContext and classifies the messages given on the command line.
//
//   dotnet run -c Release --project examples/SpamFilter                                     # train on ../shared/data, then predict two messages
//   dotnet run -c Release --project examples/SpamFilter -- train [SMSSpamCollection] [--model model.zip] [--epochs N] [--threads N]
//   dotnet run -c Release --project examples/SpamFilter -- predict <model.zip> "message" ["message" ...]
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions;

const string Usage = """
    Usage:
      SpamFilter [demo]
      SpamFilter train [SMSSpamCollection] [--model model.zip] [--epochs N] [--threads N]
      SpamFilter predict <model.zip> "message" ["message" ...]
    """;

try
{
    string command = args.Length == 0 ? "demo" : args[0].ToLowerInvariant();
    var rest = args.Skip(1).ToList();
    string Option(string name, string fallback)
    {
        int i = rest.IndexOf(name);
        if (i < 0) return fallback;
        if (i + 1 >= rest.Count) throw new ArgumentException($"{name} needs a value.");
        string v = rest[i + 1];
        rest.RemoveRange(i, 2);
        return v;
    }
    switch (command)
    {
        case "demo":
            Train(FindData(), "model.zip", epochs: 8, threads: 1);
            Predict("model.zip", ["WINNER! You have been selected for a free holiday. Call 09061701461 now to claim", "Are we still meeting for lunch tomorrow?"]);
            return 0;
        case "train":
            string model = Option("--model", "model.zip");
            int epochs = int.Parse(Option("--epochs", "8")), threads = int.Parse(Option("--threads", "1"));
            Train(rest.Count > 0 ? rest[0] : FindData(), model, epochs, threads);
            return 0;
        case "predict" when rest.Count >= 2:
            Predict(rest[0], rest.Skip(1).ToArray());
            return 0;
        default:
            Console.Error.WriteLine(Usage);
            return 2;
    }
}
catch (Exception e) when (e is ArgumentException or FileNotFoundException or DirectoryNotFoundException or FormatException)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(Usage);
    return 2;
}

static void Train(string path, string modelPath, int epochs, int threads)
{
    var ml = new MLContext(seed: 1);
    var data = ml.Data.LoadFromTextFile<Sms>(path, separatorChar: '\t', hasHeader: false, allowQuoting: false);
    var split = ml.Data.TrainTestSplit(data, testFraction: 0.2, seed: 3);

    // Text -> lower-case words without punctuation -> a vector of keys (the vocabulary comes from the training messages).
    var tokenizer = ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, "Class")
        .Append(ml.Transforms.Text.NormalizeText("Normalized", "Text", keepPunctuations: false))
        .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
        .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"))
        .Fit(split.TrainSet);
    var options = new TransformerTrainer.Options { FeatureColumnName = "Tokens", Epochs = epochs, NumberOfThreads = threads, Verbose = true };
    var transformer = ml.Deep().Transformer(options).Fit(ml.Data.Cache(tokenizer.Transform(split.TrainSet)));
    Console.WriteLine(transformer.Summary());

    var model = tokenizer.Append(transformer);
    var metrics = ml.BinaryClassification.Evaluate(model.Transform(split.TestSet));
    Console.WriteLine($"Test: accuracy {metrics.Accuracy:P2}, F1 {metrics.F1Score:F3}, AUC {metrics.AreaUnderRocCurve:F3}");

    // What the [CLS] token looks at in the last layer (averaged over heads), for three spam messages of the test set.
    var spam = ml.Data.FilterByCustomPredicate<Sms>(split.TestSet, s => s.Class != "spam");   // the predicate names the rows to drop
    foreach (var map in transformer.AttentionWeights(tokenizer.Transform(spam), maxRows: 3))
    {
        var mean = map.Mean;
        var top = Enumerable.Range(1, map.Tokens.Length - 1).OrderByDescending(j => mean[0, j]).Take(4)
            .Select(j => $"{map.Tokens[j]} ({mean[0, j]:F2})");
        Console.WriteLine($"[CLS] attends to: {string.Join(", ", top)}   <- {string.Join(' ', map.Tokens.Skip(1))}");
    }

    ml.Model.Save(model, data.Schema, modelPath);
    Console.WriteLine($"Saved {modelPath}");
}

static void Predict(string modelPath, string[] messages)
{
    var ml = new MLContext();
    var model = ml.Deep().LoadModel(modelPath, out _);
    var engine = ml.Model.CreatePredictionEngine<Sms, Prediction>(model);
    foreach (var text in messages)
    {
        var p = engine.Predict(new Sms { Class = "ham", Text = text });
        Console.WriteLine($"{(p.PredictedLabel ? "SPAM" : "ham "),-5} p(spam) = {p.Probability:F3}   {text}");
    }
}

static string FindData()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
    {
        var candidate = Path.Combine(dir.FullName, "shared", "data", "sms-spam", "SMSSpamCollection");
        if (File.Exists(candidate)) return candidate;
    }
    throw new FileNotFoundException("SMSSpamCollection not found beside the repository (../shared/data/sms-spam); give its path: SpamFilter train <file>.");
}

/// <summary>One line of the SMS Spam Collection.</summary>
public sealed class Sms
{
    /// <summary>"ham" or "spam".</summary>
    [LoadColumn(0)] public string Class { get; set; }
    /// <summary>The message.</summary>
    [LoadColumn(1)] public string Text { get; set; }
}

/// <summary>The transformer's output columns.</summary>
public sealed class Prediction
{
    /// <summary>True for spam.</summary>
    public bool PredictedLabel { get; set; }
    /// <summary>P(spam).</summary>
    public float Probability { get; set; }
}
