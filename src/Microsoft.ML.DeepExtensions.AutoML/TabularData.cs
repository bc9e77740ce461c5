using System.Globalization;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>
/// A CSV/TSV file read for a comparison: column types and the task inferred from a sample of rows, and the usual ML.NET
/// featurization (missing numbers replaced by the mean, categoricals one-hot encoded — hashed when they have many values —
/// all concatenated into <c>Features</c>; the label converted to <c>Label</c> as Boolean, Key or Single).
/// </summary>
public sealed class TabularData
{
    /// <summary>The rows as loaded (raw columns).</summary>
    public required IDataView Data { get; init; }

    /// <summary>The loader with the inferred columns: <c>Loader.Load(otherPath)</c> reads a second file of the same layout (e.g. a test split).</summary>
    public required TextLoader Loader { get; init; }

    /// <summary>Raw columns → <c>Label</c> and <c>Features</c>; give it to <see cref="ComparisonOptions.Featurizer"/>.</summary>
    public required IEstimator<ITransformer> Featurizer { get; init; }

    /// <summary>The task (inferred unless asked for).</summary>
    public required DeepTask Task { get; init; }

    /// <summary>The label column's name in the file.</summary>
    public required string LabelColumn { get; init; }

    /// <summary>Numeric feature columns.</summary>
    public required IReadOnlyList<string> NumericColumns { get; init; }

    /// <summary>Categorical (text) feature columns.</summary>
    public required IReadOnlyList<string> CategoricalColumns { get; init; }

    /// <summary>For binary tasks: the label value read as true.</summary>
    public string? PositiveClass { get; init; }

    /// <summary>One line describing what was inferred.</summary>
    public override string ToString() =>
        $"{Task}: label '{LabelColumn}'" + (PositiveClass is null ? "" : $" (positive: '{PositiveClass}')") +
        $", {NumericColumns.Count} numeric and {CategoricalColumns.Count} categorical feature columns";

    /// <summary>
    /// Reads <paramref name="path"/>. <paramref name="label"/> is a column name (case-insensitive) or a 0-based index;
    /// the separator is guessed from the first line (comma, tab, semicolon) unless given; a header is detected.
    /// </summary>
    public static TabularData Load(MLContext ml, string path, string label, DeepTask task = DeepTask.Auto, char? separator = null, int sampleRows = 5000)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Data file '{path}' was not found.", path);
        var lines = File.ReadLines(path).Where(l => l.Trim().Length > 0).Take(sampleRows + 1).ToList();
        if (lines.Count < 2) throw new InvalidDataException($"'{path}' has fewer than two non-empty lines.");
        char sep = separator ?? new[] { '\t', ',', ';' }.OrderByDescending(c => lines[0].Count(x => x == c)).First();
        var first = Split(lines[0], sep);
        int width = first.Length;
        var sample = lines.Skip(1).Select(l => Split(l, sep)).Where(r => r.Length == width).ToList();
        bool header = Enumerable.Range(0, width).Any(i => !IsNumber(first[i]) && sample.All(r => IsNumber(r[i])))
                      || first.All(f => !IsNumber(f));
        if (!header) sample.Insert(0, first);
        var names = header ? first.Select((n, i) => n.Length > 0 ? n : $"Column{i}").ToArray() : Enumerable.Range(0, width).Select(i => $"Column{i}").ToArray();

        int labelIndex = Array.FindIndex(names, n => string.Equals(n, label, StringComparison.OrdinalIgnoreCase));
        if (labelIndex < 0 && int.TryParse(label, NumberStyles.Integer, CultureInfo.InvariantCulture, out int li) && li >= 0 && li < width) labelIndex = li;
        if (labelIndex < 0)
            throw new ArgumentException($"Label column '{label}' is not in '{Path.GetFileName(path)}'; its columns are: {string.Join(", ", names)} (or give a 0-based index).", nameof(label));

        bool[] numeric = Enumerable.Range(0, width).Select(i => sample.All(r => IsNumber(r[i]) || IsMissing(r[i]))).ToArray();
        var labels = sample.Select(r => r[labelIndex]).Where(v => !IsMissing(v)).Distinct().ToList();
        var inferred = labels.Count == 2 ? DeepTask.BinaryClassification
            : !numeric[labelIndex] ? DeepTask.MulticlassClassification
            : labels.All(v => double.Parse(v, CultureInfo.InvariantCulture) % 1 == 0) && labels.Count <= 50 ? DeepTask.MulticlassClassification
            : DeepTask.Regression;
        if (task == DeepTask.Auto) task = inferred;
        if (task == DeepTask.Regression && !numeric[labelIndex])
            throw new ArgumentException($"Label column '{names[labelIndex]}' holds text (e.g. '{labels.FirstOrDefault()}'); regression needs numbers.", nameof(label));
        if (task == DeepTask.BinaryClassification && labels.Count != 2)
            throw new ArgumentException($"Label column '{names[labelIndex]}' has {labels.Count} distinct values in the first {sample.Count} rows; binary classification needs exactly 2.", nameof(label));

        // Loader: numbers as Single, text as String; the label as Single (numeric) or String.
        var loaderColumns = Enumerable.Range(0, width)
            .Select(i => new TextLoader.Column(names[i], numeric[i] ? DataKind.Single : DataKind.String, i)).ToArray();
        var loader = ml.Data.CreateTextLoader(new TextLoader.Options
        {
            Columns = loaderColumns, HasHeader = header, Separators = [sep], AllowQuoting = true, TrimWhitespace = true, MissingRealsAsNaNs = true,
        });
        var data = loader.Load(path);

        var features = Enumerable.Range(0, width).Where(i => i != labelIndex).ToList();
        var numericColumns = features.Where(i => numeric[i]).Select(i => names[i]).ToList();
        var categorical = features.Where(i => !numeric[i]).Select(i => names[i]).ToList();
        string labelName = names[labelIndex];

        // Label → "Label".
        string? positive = null;
        IEstimator<ITransformer> pipeline;
        switch (task)
        {
            case DeepTask.BinaryClassification:
                var ordered = numeric[labelIndex]
                    ? labels.OrderBy(v => double.Parse(v, CultureInfo.InvariantCulture)).ToList()
                    : labels.OrderBy(v => v, StringComparer.Ordinal).ToList();
                positive = ordered[1];
                pipeline = numeric[labelIndex]
                    ? ml.Transforms.Conversion.MapValue("Label",
                        ordered.Select(v => new KeyValuePair<float, bool>(float.Parse(v, CultureInfo.InvariantCulture), v == positive)), labelName)
                    : ml.Transforms.Conversion.MapValue("Label", ordered.Select(v => new KeyValuePair<string, bool>(v, v == positive)), labelName);
                break;
            case DeepTask.MulticlassClassification:
                pipeline = ml.Transforms.Conversion.MapValueToKey("Label", labelName);
                break;
            default:
                pipeline = ml.Transforms.CopyColumns("Label", labelName);
                break;
        }

        // Features: numbers (missing → mean) and categoricals (one-hot; hashed above 100 values) → "Features".
        var parts = new List<string>();
        if (numericColumns.Count > 0)
        {
            pipeline = pipeline.Append(ml.Transforms.Concatenate("__numeric", numericColumns.ToArray()))
                .Append(ml.Transforms.ReplaceMissingValues("__numeric", replacementMode: MissingValueReplacingEstimator.ReplacementMode.Mean));
            parts.Add("__numeric");
        }
        foreach (var name in categorical)
        {
            int col = Array.IndexOf(names, name);
            int distinct = sample.Select(r => r[col]).Distinct().Count();
            string output = $"__onehot_{parts.Count}";
            pipeline = distinct > 100
                ? pipeline.Append(ml.Transforms.Categorical.OneHotHashEncoding(output, name, numberOfBits: 10))
                : pipeline.Append(ml.Transforms.Categorical.OneHotEncoding(output, name));
            parts.Add(output);
        }
        if (parts.Count == 0) throw new ArgumentException($"'{Path.GetFileName(path)}' has no feature column besides the label '{labelName}'.", nameof(path));
        pipeline = pipeline.Append(ml.Transforms.Concatenate("Features", parts.ToArray()));

        return new TabularData
        {
            Data = data, Loader = loader, Featurizer = pipeline, Task = task, LabelColumn = labelName,
            NumericColumns = numericColumns, CategoricalColumns = categorical, PositiveClass = positive,
        };
    }

    private static string[] Split(string line, char sep) => line.Split(sep).Select(f => f.Trim().Trim('"')).ToArray();

    private static bool IsNumber(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    private static bool IsMissing(string s) => s.Length == 0 || s == "?" || s.Equals("NA", StringComparison.OrdinalIgnoreCase);
}
