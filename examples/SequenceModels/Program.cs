// Recurrent networks in ordinary ML.NET pipelines, two business-shaped commands:
//
//   messages: an SMS spam filter. Raw text -> NormalizeText -> TokenizeIntoWords -> MapValueToKey -> LSTM (embedding
//             learned from scratch), evaluated on 20 % held-out messages, saved with its text featurisers, loaded in a
//             fresh MLContext and asked about new messages through a PredictionEngine.
//   forecast: a next-hour temperature forecaster. An hourly series -> windows of the previous 24 hours -> LSTM, trained on
//             the first 80 % of the year and compared with the persistence forecast (the last value) on the last 20 %.
//
//   dotnet run -c Release --project examples/SequenceModels -- messages [SMSSpamCollection] [--epochs N]
//   dotnet run -c Release --project examples/SequenceModels -- forecast [series.csv] [--epochs N]
//
// Without a path the commands use the copies in ../shared/data (the project's data folder).
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions;

const string Usage = """
    Usage:
      SequenceModels messages [SMSSpamCollection] [--epochs N]   tab-separated ham/spam<TAB>text lines
      SequenceModels forecast [series.csv] [--epochs N]          CSV with a header: date,value (hourly, in time order)
    """;

try
{
    var positional = new List<string>();
    int epochs = 0;
    for (int i = 1; i < args.Length; i++)
    {
        if (args[i] == "--epochs" && i + 1 < args.Length && int.TryParse(args[i + 1], out int e) && e > 0) { epochs = e; i++; }
        else if (args[i].StartsWith("--")) throw new ArgumentException($"Unknown option {args[i]}.\n{Usage}");
        else positional.Add(args[i]);
    }
    switch (args.FirstOrDefault()?.ToLowerInvariant())
    {
        case "messages":
            Messages(positional.FirstOrDefault() ?? SharedData("sms-spam", "SMSSpamCollection"), epochs > 0 ? epochs : 8);
            return 0;
        case "forecast":
            Forecast(positional.FirstOrDefault() ?? SharedData("timeseries", "seattle-temps.csv"), epochs > 0 ? epochs : 8);
            return 0;
        default:
            Console.Error.WriteLine(Usage);
            return 1;
    }
}
catch (Exception e) when (e is ArgumentException or IOException or FormatException or InvalidOperationException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

static void Messages(string path, int epochs)
{
    var ml = new MLContext(seed: 1);
    var data = ml.Data.LoadFromTextFile<Message>(path, separatorChar: '\t', hasHeader: false, allowQuoting: false);
    var split = ml.Data.TrainTestSplit(data, testFraction: 0.2, seed: 3);
    var pipeline = ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, nameof(Message.Class))
        .Append(ml.Transforms.Text.NormalizeText("Normalized", nameof(Message.Text), keepPunctuations: false))
        .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
        .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"))
        .Append(ml.Deep().Lstm(new LstmTrainer.Options
        {
            FeatureColumnName = "Tokens", EmbeddingSize = 64, HiddenSize = 64, Dropout = 0.3, MaxSequenceLength = 80,
            Epochs = epochs, Seed = 2, NumberOfThreads = 1, ValidationFraction = 0.1, Verbose = true,
        }));
    Console.WriteLine($"Training an LSTM spam filter on {split.TrainSet.GetColumn<string>(nameof(Message.Text)).Count():N0} messages ...");
    var model = pipeline.Fit(split.TrainSet);
    Console.WriteLine(model.LastTransformer.Summary());
    var m = ml.BinaryClassification.Evaluate(model.Transform(split.TestSet));
    Console.WriteLine($"Test: accuracy {m.Accuracy:P2}, spam F1 {m.F1Score:F3} (precision {m.PositivePrecision:F3}, recall {m.PositiveRecall:F3}), AUC {m.AreaUnderRocCurve:F3}");

    string modelPath = Path.Combine(Path.GetTempPath(), "sms-lstm.zip");
    ml.Model.Save(model, split.TrainSet.Schema, modelPath);
    var fresh = new MLContext();
    fresh.Deep();   // registers the deep-model loader
    var engine = fresh.Model.CreatePredictionEngine<Message, SpamPrediction>(fresh.Model.Load(modelPath, out _));
    Console.WriteLine($"Saved to {modelPath}; reloaded, on new messages:");
    foreach (var text in new[]
    {
        "URGENT! You have won a 1 week FREE membership in our £100,000 prize jackpot! Txt CLAIM to 81010",
        "Are we still on for lunch tomorrow? I can pick you up at noon",
        "",
    })
    {
        var p = engine.Predict(new Message { Text = text });
        Console.WriteLine($"  {(p.PredictedLabel ? "SPAM" : "ham "),-5} p={p.Probability:F3}  \"{text}\"");
    }
}

static void Forecast(string path, int epochs)
{
    var ml = new MLContext(seed: 1);
    var series = ml.Data.LoadFromTextFile<Reading>(path, separatorChar: ',', hasHeader: true);
    var windows = ml.Deep().SeriesWindows(series, nameof(Reading.Value), lookBack: 24);
    long n = windows.GetRowCount() ?? 0, cut = (long)(n * 0.8);
    var (train, test) = (ml.Data.TakeRows(windows, cut), ml.Data.SkipRows(windows, cut));
    Console.WriteLine($"{n:N0} windows of 24 hours; training on the first {cut:N0}, testing on the last {n - cut:N0} ...");
    var lstm = ml.Deep().Lstm(new LstmTrainer.Options { HiddenSize = 32, Epochs = epochs, Seed = 1, NumberOfThreads = 1, ValidationFraction = 0.1, Verbose = true });
    using var model = lstm.Fit(train);
    var scored = model.Transform(test);
    var net = ml.Regression.Evaluate(scored);
    var persistence = ml.Regression.Evaluate(test, "Label", "LastValue");
    Console.WriteLine($"Next-hour RMSE on the test period: LSTM {net.RootMeanSquaredError:F3}, persistence (last value) {persistence.RootMeanSquaredError:F3} " +
                      $"({1 - net.RootMeanSquaredError / persistence.RootMeanSquaredError:P1} lower)");
    var last = scored.Preview(maxRows: (int)(n - cut)).RowView[^1].Values.ToDictionary(kv => kv.Key, kv => kv.Value);
    Console.WriteLine($"Last test window: forecast {(float)last["Score"]:F1}, actual {(float)last["Label"]:F1}, persistence {(float)last["LastValue"]:F1}");
}

static string SharedData(params string[] parts)
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
    {
        var candidate = Path.Combine([dir.FullName, "shared", "data", .. parts]);
        if (File.Exists(candidate)) return candidate;
    }
    throw new FileNotFoundException($"Could not find shared/data/{string.Join('/', parts)}; give the file's path.");
}

/// <summary>A labelled SMS: "ham" or "spam", then the text.</summary>
public sealed class Message
{
    /// <summary>"ham" or "spam".</summary>
    [LoadColumn(0)] public string Class { get; set; } = "ham";
    /// <summary>The message.</summary>
    [LoadColumn(1)] public string Text { get; set; } = "";
}

/// <summary>The spam filter's answer.</summary>
public sealed class SpamPrediction
{
    /// <summary>True for spam.</summary>
    public bool PredictedLabel { get; set; }
    /// <summary>Probability of spam.</summary>
    public float Probability { get; set; }
}

/// <summary>One reading of the series: date and value.</summary>
public sealed class Reading
{
    /// <summary>When.</summary>
    [LoadColumn(0)] public string Date { get; set; } = "";
    /// <summary>The value.</summary>
    [LoadColumn(1)] public float Value { get; set; }
}
