using System.Globalization;
using Microsoft.ML.Data;

namespace SyntheticCustomers;

/// <summary>One customer record (the UCI Adult census layout).</summary>
public sealed class Customer
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
    /// <summary>Income above 50K: the segment the GAN is conditioned on.</summary>
    [LoadColumn(14)] public bool Label { get; set; }

    public static readonly string[] Categorical = ["WorkClass", "Education", "MaritalStatus", "Occupation", "Relationship", "Ethnicity", "Sex", "NativeCountry"];
    public static readonly string[] Numeric = ["Age", "Fnlwgt", "EducationNum", "CapitalGain", "CapitalLoss", "HoursPerWeek"];

    /// <summary>../shared/data/adult/adult.csv above the working directory or the app, if there is one.</summary>
    public static string? FindSample()
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "shared", "data", "adult", "adult.csv");
                if (File.Exists(candidate)) return candidate;
            }
        return null;
    }

    public override string ToString() =>
        $"{Age:F0} y, {WorkClass}, {Education}, {MaritalStatus}, {Occupation}, {Sex}, {HoursPerWeek:F0} h/week, >50K: {Label}";
}

/// <summary>A generated row decoded back into a record: numbers rounded into range, one-hot blocks to their likeliest category.</summary>
public sealed record SyntheticCustomer(Dictionary<string, double> Numbers, Dictionary<string, string> Categories, string Segment)
{
    public string ToCsv() => string.Join(",", Customer.Numeric.Select(n => Numbers[n].ToString("F0", CultureInfo.InvariantCulture))
        .Concat(Customer.Categorical.Select(c => Categories[c])).Append(Segment));

    public override string ToString() =>
        $"{Numbers["Age"]:F0} y, {Categories["WorkClass"]}, {Categories["Education"]}, {Categories["MaritalStatus"]}, {Categories["Occupation"]}, " +
        $"{Categories["Sex"]}, {Numbers["HoursPerWeek"]:F0} h/week, >50K: {Segment}";
}

/// <summary>Maps feature slots (Concatenate's slot names: "Age", "WorkClass.Private", ...) back to columns.</summary>
public sealed class Decoder(string[] slotNames)
{
    private readonly Dictionary<string, List<(int Slot, string Value)>> _blocks = Customer.Categorical.ToDictionary(c => c,
        c => slotNames.Select((name, i) => (i, name)).Where(s => s.name.StartsWith(c + ".", StringComparison.Ordinal))
            .Select(s => (s.i, s.name[(c.Length + 1)..])).ToList());

    public static string CsvHeader { get; } = string.Join(",", Customer.Numeric.Concat(Customer.Categorical).Append("Segment"));

    public IEnumerable<SyntheticCustomer> Decode(IEnumerable<float[]> rows, IEnumerable<uint> segments, IReadOnlyList<string> segmentNames) =>
        rows.Zip(segments, (row, segment) => new SyntheticCustomer(
            Customer.Numeric.Select((n, i) => (n, v: Math.Max(0, Math.Round(row[i])))).ToDictionary(p => p.n, p => p.v),
            _blocks.ToDictionary(b => b.Key, b => b.Value.MaxBy(s => row[s.Slot]).Value),
            segmentNames[(int)segment - 1]));
}
