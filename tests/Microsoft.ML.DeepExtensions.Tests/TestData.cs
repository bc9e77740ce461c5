using Microsoft.ML;
using Microsoft.ML.Data;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>Real data sets from ../shared/data (see its README), loaded the way a user would with ML.NET.</summary>
public static class TestData
{
    /// <summary>The shared data folder: $DEEPEXT_DATA, else the first ancestor's shared/data.</summary>
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        if (Environment.GetEnvironmentVariable("DEEPEXT_DATA") is { Length: > 0 } env) return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "data");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("Could not find shared/data beside the repository; set DEEPEXT_DATA.");
    }

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    public sealed class AdultRow
    {
        [LoadColumn(0)] public float Age { get; set; }
        [LoadColumn(1)] public string WorkClass { get; set; }
        [LoadColumn(2)] public float Fnlwgt { get; set; }
        [LoadColumn(3)] public string Education { get; set; }
        [LoadColumn(4)] public float EducationNum { get; set; }
        [LoadColumn(5)] public string MaritalStatus { get; set; }
        [LoadColumn(6)] public string Occupation { get; set; }
        [LoadColumn(7)] public string Relationship { get; set; }
        [LoadColumn(8)] public string Ethnicity { get; set; }
        [LoadColumn(9)] public string Sex { get; set; }
        [LoadColumn(10)] public float CapitalGain { get; set; }
        [LoadColumn(11)] public float CapitalLoss { get; set; }
        [LoadColumn(12)] public float HoursPerWeek { get; set; }
        [LoadColumn(13)] public string NativeCountry { get; set; }
        [LoadColumn(14)] public bool Label { get; set; }
    }

    public static readonly string[] AdultCategorical =
        ["WorkClass", "Education", "MaritalStatus", "Occupation", "Relationship", "Ethnicity", "Sex", "NativeCountry"];
    public static readonly string[] AdultNumeric = ["Age", "Fnlwgt", "EducationNum", "CapitalGain", "CapitalLoss", "HoursPerWeek"];

    /// <summary>UCI Adult: 32,561 rows, Boolean label.</summary>
    public static IDataView Adult(MLContext ml) =>
        ml.Data.LoadFromTextFile<AdultRow>(Path("adult", "adult.csv"), separatorChar: ',', hasHeader: true, trimWhitespace: true);

    /// <summary>One-hot categoricals + numeric columns → "Features" (the usual ML.NET featurisation).</summary>
    public static IEstimator<ITransformer> AdultFeaturizer(MLContext ml) =>
        ml.Transforms.Categorical.OneHotEncoding(AdultCategorical.Select(c => new InputOutputColumnPair(c)).ToArray())
            .Append(ml.Transforms.Concatenate("Features", [.. AdultNumeric, .. AdultCategorical]));

    public sealed class DigitRow
    {
        [LoadColumn(0, 63)][VectorType(64)] public float[] Pixels { get; set; }
        [LoadColumn(64)] public float Digit { get; set; }
    }

    /// <summary>UCI optdigits: 8×8 images as 64 features, the digit as a float (map it to a key for multiclass).</summary>
    public static IDataView Digits(MLContext ml, string split) =>
        ml.Data.LoadFromTextFile<DigitRow>(Path("optdigits", $"optdigits-{split}.csv"), separatorChar: ',', hasHeader: false);

    /// <summary>Digit → Key label; Pixels → Features.</summary>
    public static IEstimator<ITransformer> DigitsFeaturizer(MLContext ml) =>
        ml.Transforms.Conversion.MapValueToKey("Label", "Digit")
            .Append(ml.Transforms.CopyColumns("Features", "Pixels"));

    public sealed class SmsRow
    {
        [LoadColumn(0)] public string Class { get; set; }
        [LoadColumn(1)] public string Text { get; set; }
    }

    /// <summary>UCI SMS Spam Collection: 5,574 messages, "Class" ham/spam and "Text".</summary>
    public static IDataView Sms(MLContext ml) =>
        ml.Data.LoadFromTextFile<SmsRow>(Path("sms-spam", "SMSSpamCollection"), separatorChar: '\t', hasHeader: false, allowQuoting: false);

    /// <summary>
    /// Class → Boolean "Label" (spam = true); Text → lower-cased words → Key vector "Tokens" (ML.NET's own text transforms,
    /// so they stay in a saved chain and a PredictionEngine scores raw text).
    /// </summary>
    public static IEstimator<ITransformer> SmsTokenizer(MLContext ml) =>
        ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, "Class")
            .Append(ml.Transforms.Text.NormalizeText("Normalized", "Text"))
            .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
            .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"));
}

/// <summary>Recurrent-family data: Seattle hourly temperatures (2010) and the SMS spam collection.</summary>
public static class SequenceData
{
    public sealed class TempRow
    {
        [LoadColumn(0)] public string Date { get; set; }
        [LoadColumn(1)] public float Temp { get; set; }
    }

    /// <summary>8,759 hourly temperatures (°F) in time order: columns Date, Temp.</summary>
    public static IDataView SeattleTemps(MLContext ml) =>
        ml.Data.LoadFromTextFile<TempRow>(TestData.Path("timeseries", "seattle-temps.csv"), separatorChar: ',', hasHeader: true);

    /// <summary>
    /// Next-hour windows from the previous 24 hours, split in time: the first 80 % of windows for training, the last 20 %
    /// (the end of the year) for testing.
    /// </summary>
    public static (IDataView Train, IDataView Test, long TrainCount) TempWindows(MLContext ml, int lookBack = 24)
    {
        var windows = ml.Deep().SeriesWindows(SeattleTemps(ml), "Temp", lookBack);
        long n = windows.GetRowCount() ?? throw new InvalidOperationException("window count unknown");
        long trainCount = (long)(n * 0.8);
        return (ml.Data.TakeRows(windows, trainCount), ml.Data.SkipRows(windows, trainCount), trainCount);
    }
}
