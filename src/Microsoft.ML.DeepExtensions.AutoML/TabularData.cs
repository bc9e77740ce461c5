using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>How a column of a CSV/TSV file is used as a feature.</summary>
public enum ColumnRole
{
    /// <summary>Numbers: missing values replaced by the mean.</summary>
    Numeric,
    /// <summary>A few distinct values: one-hot encoded (hashed above 100 values).</summary>
    Categorical,
    /// <summary>Free text (many distinct values, several words each): word and character n-grams (<c>FeaturizeText</c>).</summary>
    Text,
    /// <summary>Not a feature (e.g. an identifier: every value distinct).</summary>
    Ignore,
    /// <summary>Paths of image files (relative to the data file's folder unless absolute): decoded, resized, pixels.</summary>
    Image,
}

/// <summary>What <see cref="TabularData.Load"/> decided for one column, and why.</summary>
/// <param name="Name">The column.</param>
/// <param name="Role">How it is used.</param>
/// <param name="Reason">What in the sample led there (or "asked for" when overridden).</param>
public sealed record ColumnDecision(string Name, ColumnRole Role, string Reason)
{
    /// <inheritdoc />
    public override string ToString() => $"{Name}: {Role.ToString().ToLowerInvariant()} ({Reason})";
}

/// <summary>
/// A CSV/TSV file read for a comparison: column types and the task inferred from a sample of rows, and the usual ML.NET
/// featurization (missing numbers replaced by the mean, categoricals one-hot encoded — hashed when they have many values —,
/// free text as word and character n-grams, identifiers left out, all concatenated into <c>Features</c>; the label
/// converted to <c>Label</c> as Boolean, Key or Single). <see cref="Columns"/> says what was decided for each column.
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

    /// <summary>Categorical feature columns (a few distinct strings).</summary>
    public required IReadOnlyList<string> CategoricalColumns { get; init; }

    /// <summary>Free-text feature columns.</summary>
    public IReadOnlyList<string> TextColumns => Columns.Where(c => c.Role == ColumnRole.Text).Select(c => c.Name).ToList();

    /// <summary>Image-path feature columns.</summary>
    public IReadOnlyList<string> ImageColumns => Columns.Where(c => c.Role == ColumnRole.Image).Select(c => c.Name).ToList();

    /// <summary>
    /// When one image column is the only feature: the shape of its pixels in <c>Features</c> — give it to
    /// <see cref="ComparisonOptions.ImageShape"/> so the image candidates (CNN, ViT, ResNet18) run; null otherwise.
    /// </summary>
    public ImageShape? ImageShape { get; init; }

    /// <summary>Every column but the label: its role and the reason.</summary>
    public required IReadOnlyList<ColumnDecision> Columns { get; init; }

    /// <summary>For binary tasks: the label value read as true.</summary>
    public string? PositiveClass { get; init; }

    /// <summary>One line describing what was inferred.</summary>
    public override string ToString() =>
        $"{Task}: label '{LabelColumn}'" + (PositiveClass is null ? "" : $" (positive: '{PositiveClass}')") +
        $", {NumericColumns.Count} numeric, {CategoricalColumns.Count} categorical, {TextColumns.Count} text" + (ImageColumns.Count > 0 ? $", {ImageColumns.Count} image" : "") + " feature columns" +
        (Columns.Count(c => c.Role == ColumnRole.Ignore) is int n and > 0 ? $", {n} ignored" : "");

    /// <summary>
    /// Reads <paramref name="path"/>. <paramref name="label"/> is a column name (case-insensitive) or a 0-based index;
    /// the separator is guessed from the first line (comma, tab, semicolon) unless given; a header is detected. Each other
    /// column's role is inferred from the first <paramref name="sampleRows"/> rows — numbers are numeric; strings of
    /// several words with mostly distinct values are text; an all-distinct integer sequence, an all-distinct single-word
    /// column or an all-distinct column named like an id ("ID", "user_id", "OrderId") is ignored; other strings are
    /// categorical; paths of image files (.png, .jpg, .jpeg, .bmp) are images, read relative to the file's folder and
    /// resized to <paramref name="imageSize"/>² (in gray with <paramref name="grayscaleImages"/>) — unless
    /// <paramref name="roles"/> names it (case-insensitive).
    /// </summary>
    public static TabularData Load(MLContext ml, string path, string label, DeepTask task = DeepTask.Auto, char? separator = null, int sampleRows = 5000,
        IReadOnlyDictionary<string, ColumnRole>? roles = null, int imageSize = 32, bool grayscaleImages = false)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Data file '{path}' was not found.", path);
        var lines = File.ReadLines(path).Where(l => l.Trim().Length > 0).Take(sampleRows + 1).ToList();
        if (lines.Count < 2) throw new InvalidDataException($"'{path}' has fewer than two non-empty lines.");
        char sep = separator ?? GuessSeparator(lines[0]);
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

        var asked = new Dictionary<string, ColumnRole>(roles ?? new Dictionary<string, ColumnRole>(), StringComparer.OrdinalIgnoreCase);
        if (asked.Keys.FirstOrDefault(k => !names.Contains(k, StringComparer.OrdinalIgnoreCase)) is { } unknown)
            throw new ArgumentException($"Column '{unknown}' (given a role) is not in '{Path.GetFileName(path)}'; its columns are: {string.Join(", ", names)}.", nameof(roles));
        var decisions = Enumerable.Range(0, width).Where(i => i != labelIndex)
            .Select(i => asked.TryGetValue(names[i], out var role) ? new ColumnDecision(names[i], role, "asked for") : Infer(names[i], sample.Select(r => r[i]).ToList(), numeric[i]))
            .ToList();
        if (decisions.FirstOrDefault(d => d.Role == ColumnRole.Image && numeric[Array.IndexOf(names, d.Name)]) is { } numbers)
            throw new ArgumentException($"Column '{numbers.Name}' cannot be an image column: it holds numbers, not image file paths.", nameof(roles));
        if (decisions.FirstOrDefault(d => d.Role == ColumnRole.Numeric && !numeric[Array.IndexOf(names, d.Name)]) is { } notNumbers)
            throw new ArgumentException($"Column '{notNumbers.Name}' cannot be numeric: it holds text (e.g. '{sample.Select(r => r[Array.IndexOf(names, notNumbers.Name)]).First(v => !IsNumber(v) && !IsMissing(v))}').", nameof(roles));
        var numericColumns = decisions.Where(d => d.Role == ColumnRole.Numeric).Select(d => d.Name).ToList();
        var categorical = decisions.Where(d => d.Role == ColumnRole.Categorical).Select(d => d.Name).ToList();
        var text = decisions.Where(d => d.Role == ColumnRole.Text).Select(d => d.Name).ToList();
        string labelName = names[labelIndex];

        // Loader: numbers as Single, text as String (also a numeric column used as categorical or text); the label as Single (numeric) or String.
        bool AsNumber(int i) => numeric[i] && (i == labelIndex || decisions.First(d => d.Name == names[i]).Role is ColumnRole.Numeric or ColumnRole.Ignore);
        var loaderColumns = Enumerable.Range(0, width)
            .Select(i => new TextLoader.Column(names[i], AsNumber(i) ? DataKind.Single : DataKind.String, i)).ToArray();
        var loader = ml.Data.CreateTextLoader(new TextLoader.Options
        {
            Columns = loaderColumns, HasHeader = header, Separators = [sep], AllowQuoting = true, TrimWhitespace = true, MissingRealsAsNaNs = true,
        });
        var data = loader.Load(path);

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

        // Features: numbers (missing → mean), categoricals (one-hot; hashed above 100 values) and text (n-grams) → "Features".
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
        foreach (var name in text)
        {
            string output = $"__text_{parts.Count}";
            pipeline = pipeline.Append(ml.Transforms.Text.FeaturizeText(output, name));
            parts.Add(output);
        }
        ImageShape? shape = null;
        string folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        foreach (var name in decisions.Where(d => d.Role == ColumnRole.Image).Select(d => d.Name))
        {
            int col = Array.IndexOf(names, name);
            if (sample.Select(r => r[col]).FirstOrDefault(v => !IsMissing(v) && !File.Exists(Path.Combine(folder, v))) is { } lost)
                throw new FileNotFoundException($"Image column '{name}': '{lost}' was not found (paths are read relative to '{folder}').", Path.Combine(folder, lost));
            string output = $"__pixels_{parts.Count}";
            (var pixels, shape) = ImageFolderData.Pixels(ml, output, name, folder, imageSize, grayscaleImages);
            pipeline = pipeline.Append(pixels);
            parts.Add(output);
        }
        if (parts.Count != 1) shape = null;   // pixels beside other features are not one image
        if (parts.Count == 0) throw new ArgumentException($"'{Path.GetFileName(path)}' has no feature column besides the label '{labelName}'.", nameof(path));
        pipeline = pipeline.Append(ml.Transforms.Concatenate("Features", parts.ToArray()));

        return new TabularData
        {
            Data = data, Loader = loader, Featurizer = pipeline, Task = task, LabelColumn = labelName,
            NumericColumns = numericColumns, CategoricalColumns = categorical, Columns = decisions, PositiveClass = positive, ImageShape = shape,
        };
    }

    /// <summary>A column's role from its sampled values (see <see cref="Load"/>).</summary>
    private static ColumnDecision Infer(string name, IReadOnlyList<string> values, bool numeric)
    {
        var present = values.Where(v => !IsMissing(v)).ToList();
        int distinct = present.Distinct().Count();
        bool unique = present.Count >= 20 && distinct == present.Count;
        // "id", "uuid", "user_id", "order id", "OrderId", "customerID" (not "Paid", "Valid").
        bool idName = name.ToLowerInvariant() is "id" or "uuid" or "guid" || Regex.IsMatch(name, @"[_\s.-](id|uuid|guid)$", RegexOptions.IgnoreCase) || Regex.IsMatch(name, "[a-z]I[dD]$");
        if (unique && idName) return new(name, ColumnRole.Ignore, $"an identifier: all {present.Count:N0} sampled values distinct, named like an id");
        if (numeric)
        {
            var v = present.Select(x => double.Parse(x, CultureInfo.InvariantCulture)).ToList();
            bool sequence = unique && v.All(x => x % 1 == 0) && v.Zip(v.Skip(1), (a, b) => b - a).Distinct().Count() == 1;
            return sequence
                ? new(name, ColumnRole.Ignore, $"an identifier: a sequence of {present.Count:N0} distinct integers")
                : new(name, ColumnRole.Numeric, $"numbers, {distinct:N0} distinct");
        }
        if (present.Count > 0 && present.All(ImageFolderData.IsImagePath))
            return new(name, ColumnRole.Image, $"image paths: all {present.Count:N0} sampled values end in an image extension");
        double words = present.Count == 0 ? 0 : present.Average(x => x.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length);
        if (words >= 3 && distinct >= 0.5 * present.Count)
            return new(name, ColumnRole.Text, $"free text: {words:F1} words per value, {distinct:N0} of {present.Count:N0} distinct");
        if (unique && words <= 1)
            return new(name, ColumnRole.Ignore, $"an identifier: all {present.Count:N0} sampled values distinct single words");
        return new(name, ColumnRole.Categorical, $"{distinct:N0} distinct values" + (distinct > 100 ? ", hashed" : ""));
    }

    /// <summary>
    /// Reads a CSV/TSV file with the columns a saved model expects (its input schema, e.g. the one
    /// <c>mlContext.Model.Load</c> returns): each column is found by name in the file's header (case-insensitive) and read
    /// with the schema's type. Columns the file lacks (typically the label) are listed in <paramref name="missing"/> and
    /// read as missing values; a file that has none of the model's columns, or a vector column, is an error.
    /// </summary>
    public static IDataView LoadFor(MLContext ml, string path, DataViewSchema inputSchema, out IReadOnlyList<string> missing, char? separator = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Data file '{path}' was not found.", path);
        string header = File.ReadLines(path).FirstOrDefault(l => l.Trim().Length > 0) ?? throw new InvalidDataException($"'{path}' is empty.");
        char sep = separator ?? GuessSeparator(header);
        var names = Split(header, sep);
        var columns = new List<TextLoader.Column>();
        var absent = new List<string>();
        foreach (var column in inputSchema.Where(c => !c.IsHidden))
        {
            var kind = column.Type switch
            {
                TextDataViewType => DataKind.String,
                NumberDataViewType n when n.RawType == typeof(float) => DataKind.Single,
                NumberDataViewType n when n.RawType == typeof(double) => DataKind.Double,
                BooleanDataViewType => DataKind.Boolean,
                _ => throw new InvalidDataException(
                    $"The model's input column '{column.Name}' is {column.Type}; only files of scalar columns (numbers, text, booleans) can be read by name. Build the IDataView in code for this model."),
            };
            int index = Array.FindIndex(names, n => string.Equals(n, column.Name, StringComparison.OrdinalIgnoreCase));
            if (index < 0) absent.Add(column.Name);
            columns.Add(new TextLoader.Column(column.Name, kind, index < 0 ? names.Length : index));   // past the last field: read as missing
        }
        if (absent.Count == columns.Count)
            throw new InvalidDataException($"'{Path.GetFileName(path)}' has none of the model's input columns ({string.Join(", ", absent)}); its header is: {string.Join(", ", names)}.");
        missing = absent;
        return ml.Data.CreateTextLoader(new TextLoader.Options
        {
            Columns = columns.ToArray(), HasHeader = true, Separators = [sep], AllowQuoting = true, TrimWhitespace = true, MissingRealsAsNaNs = true,
        }).Load(path);
    }

    // The separator of a header line: the most frequent of tab, comma and semicolon.
    private static char GuessSeparator(string header) => new[] { '\t', ',', ';' }.OrderByDescending(c => header.Count(x => x == c)).First();

    private static string[] Split(string line, char sep) => line.Split(sep).Select(f => f.Trim().Trim('"')).ToArray();

    private static bool IsNumber(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    private static bool IsMissing(string s) => s.Length == 0 || s == "?" || s.Equals("NA", StringComparison.OrdinalIgnoreCase);
}
