using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.Tokenizers;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// A raw text column read as a pretrained BERT encoder's input: WordPiece tokens (<c>Microsoft.ML.Tokenizers</c>'
/// <see cref="BertTokenizer"/> on the model's own vocabulary, lower-cased and accents removed for uncased models),
/// <c>[CLS] … [SEP]</c>, truncated to <see cref="MaxTokens"/> and padded with id 0. Each row is <see cref="MaxTokens"/>
/// token ids stored as floats; they are never standardised. The vocabulary is part of the input, so a saved model
/// tokenizes exactly as at training without the pretrained package.
/// </summary>
/// <param name="Vocabulary">The WordPiece vocabulary, one token per id.</param>
/// <param name="MaxTokens">Tokens per row, [CLS] and [SEP] included.</param>
/// <param name="LowerCase">Lower-case and strip accents before tokenizing (uncased models).</param>
[SerializedName("wordpiece")]
public sealed record WordPieceInput(string[] Vocabulary, int MaxTokens, bool LowerCase = true) : FeatureInput
{
    private static readonly ConditionalWeakTable<string[], BertTokenizer> Tokenizers = new();

    /// <summary>Floats per row: <see cref="MaxTokens"/> ids.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public override int Size => MaxTokens;

    /// <summary>Reads a vocabulary file (one token per line).</summary>
    public static string[] ReadVocabulary(Stream stream)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var tokens = new List<string>();
        while (reader.ReadLine() is { } line) tokens.Add(line);
        while (tokens.Count > 0 && tokens[^1].Length == 0) tokens.RemoveAt(tokens.Count - 1);
        return [.. tokens];
    }

    /// <summary>Token ids are indices: never standardised.</summary>
    internal override bool Standardized => false;

    /// <summary>Whether a column of this shape is text (for <c>GetOutputSchema</c>).</summary>
    internal static bool Reads(SchemaShape.Column column) => column.ItemType is TextDataViewType && column.Kind == SchemaShape.Column.VectorKind.Scalar;

    internal override void Check(DataViewType type, string column)
    {
        if (type is not TextDataViewType)
            throw new ArgumentException($"Feature column '{column}' is {type}; a pretrained text encoder reads a Text column (the raw text: it tokenizes it itself, no TokenizeIntoWords needed).", column);
    }

    /// <summary>The tokenizer for this vocabulary (built once per vocabulary).</summary>
    private BertTokenizer Tokenizer => Tokenizers.GetValue(Vocabulary, vocabulary =>
    {
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(string.Join('\n', vocabulary) + "\n"));
        return BertTokenizer.Create(stream, new BertOptions
        {
            LowerCaseBeforeTokenization = LowerCase, RemoveNonSpacingMarks = LowerCase, PreTokenizer = new BertPunctuationPreTokenizer(),
        });
    });

    /// <summary>
    /// Splits as BERT's original basic tokenizer does: at white space, and every punctuation character is a word of its own
    /// — the ASCII non-alphanumerics ($, _, ^, `, ...) as well as Unicode's P categories. The library's default pattern
    /// keeps "_" inside words and drops symbols such as "$", which gives ids the pretrained model never saw.
    /// </summary>
    private sealed class BertPunctuationPreTokenizer : PreTokenizer
    {
        public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => Split(text.AsSpan());

        public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => Split(text);

        private static List<(int Offset, int Length)> Split(ReadOnlySpan<char> text)
        {
            var words = new List<(int, int)>();
            int start = -1;
            for (int i = 0; i < text.Length; i++)
            {
                char c = text[i];
                if (char.IsWhiteSpace(c) || IsPunctuation(c))
                {
                    if (start >= 0) words.Add((start, i - start));
                    start = -1;
                    if (!char.IsWhiteSpace(c)) words.Add((i, 1));
                }
                else if (start < 0) start = i;
            }
            if (start >= 0) words.Add((start, text.Length - start));
            return words;
        }

        private static bool IsPunctuation(char c) => c is >= '!' and <= '/' or >= ':' and <= '@' or >= '[' and <= '`' or >= '{' and <= '~'
            || char.GetUnicodeCategory(c) is System.Globalization.UnicodeCategory.ConnectorPunctuation or System.Globalization.UnicodeCategory.DashPunctuation
                or System.Globalization.UnicodeCategory.OpenPunctuation or System.Globalization.UnicodeCategory.ClosePunctuation
                or System.Globalization.UnicodeCategory.InitialQuotePunctuation or System.Globalization.UnicodeCategory.FinalQuotePunctuation
                or System.Globalization.UnicodeCategory.OtherPunctuation;
    }

    /// <summary>
    /// The ids of <paramref name="text"/>: [CLS], its word pieces (as many as fit in <see cref="MaxTokens"/>), [SEP] — what
    /// the network reads, and what an exported ONNX model takes as its <c>column_ids</c> input.
    /// </summary>
    public IReadOnlyList<int> Encode(string text)
    {
        var tokenizer = Tokenizer;
        var pieces = tokenizer.EncodeToIds(text, addSpecialTokens: false);
        var ids = new List<int>(Math.Min(pieces.Count + 2, MaxTokens)) { tokenizer.ClassificationTokenId };
        ids.AddRange(pieces.Take(MaxTokens - 2));
        ids.Add(tokenizer.SeparatorTokenId);
        return ids;
    }

    /// <summary>
    /// An exported graph cannot tokenize: it takes the word-piece ids as int64 [N, T] named "<c>column</c>_ids" ([CLS] …
    /// [SEP], padded with 0, as <see cref="Encode"/> gives them; cut or padded to <see cref="MaxTokens"/>).
    /// </summary>
    internal override (global::Onnx.ValueInfoProto[] Inputs, string Floats) OnnxInput(Onnx.OnnxGraph graph, string column)
    {
        string name = $"{column}_ids";
        var input = Onnx.OnnxGraph.Value(name, global::Onnx.TensorProto.Types.DataType.Int64, [null, null], "T");
        string ids = graph.FitLength(name, MaxTokens, $"{name}_fitted");
        return ([input], graph.Node("Cast", [ids], $"{name}_float", ("to", (long)global::Onnx.TensorProto.Types.DataType.Float)));
    }

    internal override IFeatureReader Reader(DataViewRow row, string column)
    {
        Check(row.Schema[column].Type, column);
        return new TextReader(this, row.GetGetter<ReadOnlyMemory<char>>(row.Schema[column]));
    }

    private sealed class TextReader(WordPieceInput input, ValueGetter<ReadOnlyMemory<char>> getter) : IFeatureReader
    {
        private ReadOnlyMemory<char> _text;

        public void Read(Span<float> dst, long row)
        {
            getter(ref _text);
            dst.Clear();
            var ids = input.Encode(_text.ToString());
            for (int i = 0; i < ids.Count; i++) dst[i] = ids[i];
        }
    }
}
