using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Text in, text out around a <see cref="SequenceGeneratorTrainer"/>: it splits the source text (many-to-many) or reads
/// a condition such as a class (one-to-many), splits the target text into lower-case words and punctuation with the end
/// token appended, trains the generator, and returns a model whose <see cref="Options.OutputColumnName"/> holds the
/// generated text (and <c>PredictedLabel</c> the generated word keys). Scoring needs only the source or condition column.
/// Create it with <c>mlContext.Deep().TextGenerator(...)</c>.
/// </summary>
public sealed partial class TextGenerator : IEstimator<TransformerChain<ITransformer>>
{
    /// <summary>The end token appended to every target (and where generated text stops).</summary>
    public const string EndToken = "</s>";

    /// <summary>Options for <see cref="TextGenerator"/>.</summary>
    public sealed class Options
    {
        /// <summary>The text to learn to generate (a Text column; needed for training only).</summary>
        public string TargetColumnName { get; set; } = "Target";

        /// <summary>Many-to-many: the text to generate from (a Text column). Set this or <see cref="ConditionColumnName"/>.</summary>
        public string? SourceColumnName { get; set; }

        /// <summary>One-to-many: the condition to generate for, e.g. a class (a Text or other scalar column); each distinct training value is one class.</summary>
        public string? ConditionColumnName { get; set; }

        /// <summary>The generated text column. Default "GeneratedText".</summary>
        public string OutputColumnName { get; set; } = "GeneratedText";

        /// <summary>The generator's options (architecture, epochs, output length, decoding). Its column names are set by this estimator.</summary>
        public SequenceGeneratorTrainer.Options Generator { get; set; } = new();
    }

    private const string Source = "__source", SourceWords = "__source_words", SourceKeys = "__source_keys";
    private const string Target = "__target", TargetWords = "__target_words", TargetKeys = "__target_keys";
    private const string Condition = "__condition", ConditionKey = "__condition_key";

    /// <summary>The one-hot condition, named after the user's column so that errors about its rows name it.</summary>
    private string ConditionVector => $"{_options.ConditionColumnName}.OneHot";
    private const string GeneratedWordsColumn = "__generated_words", Generated = "__generated";

    private readonly MLContext _ml;
    private readonly Options _options;

    /// <summary>Creates the estimator (prefer <c>mlContext.Deep().TextGenerator(options)</c>).</summary>
    public TextGenerator(MLContext context, Options options)
    {
        _ml = context ?? throw new ArgumentNullException(nameof(context));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        DeepCatalog.Register(context);
    }

    /// <summary>Splits text into lower-case words and punctuation marks, the way targets are split and outputs compared.</summary>
    public static string[] Split(string? text) => WordPattern().Matches((text ?? "").ToLowerInvariant()).Select(m => m.Value).ToArray();

    /// <summary>Joins generated words back into text, up to the first end token; punctuation attaches to the word before it.</summary>
    public static string Join(IEnumerable<string> words)
    {
        var text = new StringBuilder();
        foreach (var w in words)
        {
            if (w == EndToken) break;
            if (w.Length == 0) continue;
            bool attach = text.Length == 0 || (w.Length == 1 && char.IsPunctuation(w[0]) && w is not ("(" or "\"" or "'")) || text[^1] is '(' or '/';
            if (!attach) text.Append(' ');
            text.Append(w);
        }
        return text.ToString();
    }

    [GeneratedRegex(@"[\p{L}\p{N}_]+(?:[-'.+][\p{L}\p{N}_]+)*|[^\s\p{L}\p{N}_]", RegexOptions.CultureInvariant)]
    private static partial Regex WordPattern();

    private void CheckOptions()
    {
        var o = _options;
        if ((o.SourceColumnName is null) == (o.ConditionColumnName is null))
            throw new ArgumentException("TextGenerator: set exactly one of SourceColumnName (text to text) and ConditionColumnName (text for a condition such as a class).", nameof(o.SourceColumnName));
        if (string.IsNullOrWhiteSpace(o.OutputColumnName)) throw new ArgumentException("TextGenerator: OutputColumnName must be a column name.", nameof(o.OutputColumnName));
        ArgumentNullException.ThrowIfNull(o.Generator, nameof(o.Generator));
        o.Generator.Validate();
    }

    /// <summary>Source text → word keys, or condition → one-hot class vector (an unseen condition value fails at scoring, naming the column).</summary>
    private IEstimator<ITransformer> SourceFeaturizer() => _options.SourceColumnName is { } source
        ? _ml.Transforms.CopyColumns(Source, source)
            .Append(_ml.Transforms.CustomMapping<SourceText, SourceWordsRow>(SourceWordsMapping.Map, SourceWordsMapping.Contract))
            .Append(_ml.Transforms.Conversion.MapValueToKey(SourceKeys, SourceWords))
        : _ml.Transforms.Conversion.ConvertType(Condition, _options.ConditionColumnName!, Microsoft.ML.Data.DataKind.String)
            .Append(_ml.Transforms.Conversion.MapValueToKey(ConditionKey, Condition))
            .Append(_ml.Transforms.Conversion.MapKeyToVector(ConditionVector, ConditionKey));

    /// <summary>Trains the generator on <paramref name="input"/> and returns the scoring chain.</summary>
    public TransformerChain<ITransformer> Fit(IDataView input)
    {
        CheckOptions();
        var o = _options;
        ColumnChecks(input.Schema, o.TargetColumnName, "Target", TextDataViewType.Instance);
        if (o.SourceColumnName is { } s) ColumnChecks(input.Schema, s, "Source", TextDataViewType.Instance);
        else ColumnChecks(input.Schema, o.ConditionColumnName!, "Condition", null);

        var featurizer = SourceFeaturizer().Fit(input);
        var labels = _ml.Transforms.CopyColumns(Target, o.TargetColumnName)
            .Append(_ml.Transforms.CustomMapping<TargetText, TargetWordsRow>(TargetWordsMapping.Map, TargetWordsMapping.Contract))
            .Append(_ml.Transforms.Conversion.MapValueToKey(TargetKeys, TargetWords))
            .Fit(input);
        var train = featurizer.Transform(labels.Transform(input));
        var options = o.Generator;
        options.FeatureColumnName = o.SourceColumnName is null ? ConditionVector : SourceKeys;
        options.LabelColumnName = TargetKeys;
        options.EndToken = EndToken;
        var generator = new SequenceGeneratorTrainer(_ml, options).Fit(train);
        var text = _ml.Transforms.Conversion.MapKeyToValue(GeneratedWordsColumn, ColumnNames.PredictedLabel)
            .Append(_ml.Transforms.CustomMapping<GeneratedWords, GeneratedText>(JoinMapping.Map, JoinMapping.Contract))
            .Append(_ml.Transforms.CopyColumns(o.OutputColumnName, Generated))
            .Fit(generator.Transform(featurizer.Transform(input)));
        return new TransformerChain<ITransformer>([.. Parts(featurizer), generator, .. text]);
    }

    private static IEnumerable<ITransformer> Parts(ITransformer t) => t as IEnumerable<ITransformer> ?? [t];

    private static void ColumnChecks(DataViewSchema schema, string name, string role, DataViewType? type)
    {
        var column = Data.ColumnChecks.Find(schema, name, role);
        if (type is not null && !column.Type.Equals(type))
            throw new ArgumentException($"{role} column '{name}' must be {type}; found {column.Type}.", name);
    }

    /// <inheritdoc />
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        CheckOptions();
        var o = _options;
        string input = o.SourceColumnName ?? o.ConditionColumnName!;
        if (!inputSchema.Any(c => c.Name == input))
            throw new ArgumentException($"{(o.SourceColumnName is null ? "Condition" : "Source")} column '{input}' was not found.", input);
        var columns = inputSchema.ToDictionary(c => c.Name);
        columns[o.OutputColumnName] = Persistence.MlNetBridge.ShapeColumn(o.OutputColumnName, SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance, false);
        columns[ColumnNames.PredictedLabel] = Persistence.MlNetBridge.ShapeColumn(ColumnNames.PredictedLabel, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.UInt32, true);
        columns[ColumnNames.Score] = Persistence.MlNetBridge.ShapeColumn(ColumnNames.Score, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }

    private sealed class SourceText { [ColumnName(Source)] public string Text { get; set; } = ""; }
    private sealed class SourceWordsRow { [ColumnName(SourceWords)] public string[] Words { get; set; } = []; }
    private sealed class TargetText { [ColumnName(Target)] public string Text { get; set; } = ""; }
    private sealed class TargetWordsRow { [ColumnName(TargetWords)] public string[] Words { get; set; } = []; }
    private sealed class GeneratedWords { [ColumnName(GeneratedWordsColumn)] public string[] Words { get; set; } = []; }
    private sealed class GeneratedText { [ColumnName(Generated)] public string Text { get; set; } = ""; }

    /// <summary>Source text → words; a source with no words is an error (there is nothing to generate from).</summary>
    [CustomMappingFactoryAttribute(Contract)]
    private sealed class SourceWordsMapping : CustomMappingFactory<SourceText, SourceWordsRow>
    {
        public const string Contract = "DeepExtensions.TextGenerator.SourceWords";

        public static void Map(SourceText input, SourceWordsRow output)
        {
            output.Words = Split(input.Text);
            if (output.Words.Length == 0)
                throw new InvalidOperationException("TextGenerator: a source text has no words; the generator needs at least one source word per row (empty or whitespace-only text found).");
        }

        public override Action<SourceText, SourceWordsRow> GetMapping() => Map;
    }

    /// <summary>Target text → words + the end token.</summary>
    [CustomMappingFactoryAttribute(Contract)]
    private sealed class TargetWordsMapping : CustomMappingFactory<TargetText, TargetWordsRow>
    {
        public const string Contract = "DeepExtensions.TextGenerator.TargetWords";

        public static void Map(TargetText input, TargetWordsRow output) => output.Words = [.. Split(input.Text), EndToken];

        public override Action<TargetText, TargetWordsRow> GetMapping() => Map;
    }

    /// <summary>Generated words → text, up to the end token.</summary>
    [CustomMappingFactoryAttribute(Contract)]
    private sealed class JoinMapping : CustomMappingFactory<GeneratedWords, GeneratedText>
    {
        public const string Contract = "DeepExtensions.TextGenerator.Join";

        public static void Map(GeneratedWords input, GeneratedText output) => output.Text = Join(input.Words);

        public override Action<GeneratedWords, GeneratedText> GetMapping() => Map;
    }
}
