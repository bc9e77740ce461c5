using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>What to do with a sequence (tokens, or steps of a numeric sequence) longer than the configured maximum.</summary>
public enum SequenceOverflow
{
    /// <summary>Keep the first <c>MaxSequenceLength</c> tokens (or steps).</summary>
    Truncate,

    /// <summary>Throw, naming the column, row and length.</summary>
    Error,

    /// <summary>Keep the last <c>MaxSequenceLength</c> tokens (or steps): the most recent, which is what a forecaster needs.</summary>
    KeepLast,
}

/// <summary>
/// Options of a family that reads token sequences: a variable-length vector of keys, as ML.NET's
/// <c>TokenizeIntoWords → MapValueToKey</c> produce. A trainer whose options implement this reads such a feature column.
/// </summary>
public interface ITokenSequenceOptions
{
    /// <summary>Longest sequence the network reads (tokens beyond it are truncated or rejected, see <see cref="SequenceOverflow"/>).</summary>
    int MaxSequenceLength { get; set; }

    /// <summary>What happens to a sequence longer than <see cref="MaxSequenceLength"/>.</summary>
    SequenceOverflow SequenceOverflow { get; set; }
}

/// <summary>
/// How a token-sequence feature column (a vector of keys 1..V; key 0 means "not in the vocabulary") becomes the
/// network's input: each row is read as <see cref="MaxLength"/> token ids stored as floats — key k → id k, key 0 →
/// <see cref="UnknownId"/>, then <see cref="PaddingId"/> (0) to the end. An empty sequence is read as one unknown token,
/// so no row is all padding. Token ids are never standardised. Modules turn a batch back into ids, lengths and a
/// padding mask with <see cref="TokenBatch.From"/>.
/// </summary>
/// <param name="VocabularySize">V: the key type's count.</param>
/// <param name="MaxLength">Tokens read per row.</param>
/// <param name="Overflow">What happens to longer rows.</param>
[SerializedName("tokens")]
public sealed record TokenInput(int VocabularySize, int MaxLength, SequenceOverflow Overflow = SequenceOverflow.Truncate) : FeatureInput
{
    /// <summary>Floats per row: <see cref="MaxLength"/> ids.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public override int Size => MaxLength;

    /// <summary>Token ids are indices: never standardised.</summary>
    internal override bool Standardized => false;

    internal override int? Steps => MaxLength;

    /// <summary>Whether a column of this shape is a token sequence (for <c>GetOutputSchema</c>).</summary>
    internal static bool Reads(SchemaShape.Column column) => column.IsKey && column.Kind != SchemaShape.Column.VectorKind.Scalar;

    internal override void Check(DataViewType type, string column)
    {
        if (type is not VectorDataViewType { ItemType: KeyDataViewType key })
            throw new ArgumentException($"Feature column '{column}' must be a vector of keys (token ids, from TokenizeIntoWords → MapValueToKey) as in training; found {type}.", column);
        if (key.Count != (ulong)VocabularySize)
            throw new ArgumentException(
                $"Feature column '{column}' has a vocabulary of {key.Count} keys, but the network was built for {VocabularySize}; " +
                "the data must come from the same MapValueToKey as the training data.", column);
    }

    internal override IFeatureReader Reader(DataViewRow row, string column) => new TokenReader(row.GetGetter<VBuffer<uint>>(row.Schema[column]), column, this);

    /// <summary>The row's keys as ids (key k → k, key 0 → unknown), padded with 0; an empty row becomes one unknown token.</summary>
    private sealed class TokenReader(ValueGetter<VBuffer<uint>> getter, string column, TokenInput t) : IFeatureReader
    {
        private VBuffer<uint> _keys;

        public void Read(Span<float> dst, long row)
        {
            getter(ref _keys);
            int n = _keys.Length;
            if (n > t.MaxLength && t.Overflow == SequenceOverflow.Error)
                throw new InvalidOperationException(
                    $"Feature column '{column}' has a sequence of {n} tokens in row {row}; the maximum is {t.MaxLength}. " +
                    "Raise MaxSequenceLength or set SequenceOverflow = Truncate.");
            dst[..t.MaxLength].Clear();
            if (n == 0)
            {
                dst[0] = t.UnknownId;
                return;
            }
            int i = 0, skip = t.Overflow == SequenceOverflow.KeepLast ? Math.Max(0, n - t.MaxLength) : 0;
            foreach (uint k in _keys.DenseValues())
            {
                if (skip > 0) { skip--; continue; }
                if (i == t.MaxLength) break;
                if (k > t.VocabularySize)
                    throw new InvalidOperationException($"Feature column '{column}' has key {k} in row {row}, outside its vocabulary of {t.VocabularySize}.");
                dst[i++] = k == 0 ? t.UnknownId : k;
            }
        }
    }

    /// <summary>
    /// In ONNX the column is int64 token ids [N, T] of any length T, as the network reads them: 1..V the token's key,
    /// V + 1 an unknown token, 0 padding (at the end of a row). Rows are cut to <see cref="MaxLength"/> (keeping the first
    /// tokens, as <see cref="SequenceOverflow.Truncate"/> does) and padded to it.
    /// </summary>
    internal override (global::Onnx.ValueInfoProto[] Inputs, string Floats) OnnxInput(Onnx.OnnxGraph graph, string column)
    {
        if (Overflow == SequenceOverflow.KeepLast)
            throw new NotSupportedException($"ONNX export: feature column '{column}' keeps the last tokens of long rows (SequenceOverflow.KeepLast), which the exported graph cannot do for padded rows; train with Truncate to export.");
        var input = Onnx.OnnxGraph.Value(column, global::Onnx.TensorProto.Types.DataType.Int64, [null, null], "T");
        string ids = graph.FitLength(column, MaxLength, $"{column}_ids");
        return ([input], graph.Node("Cast", [ids], $"{column}_float", ("to", (long)global::Onnx.TensorProto.Types.DataType.Float)));
    }

    /// <summary>
    /// The ONNX form of <see cref="TokenBatch.From"/>: float ids [B, L] → int64 ids and the bool mask of real tokens.
    /// </summary>
    internal static (string Ids, string Keep) OnnxIds(Onnx.OnnxGraph g, string x, string path)
    {
        string ids = g.Node("Cast", [x], $"{path}.ids", ("to", (long)global::Onnx.TensorProto.Types.DataType.Int64));
        return (ids, g.Node("Not", [g.Node("Equal", [ids, g.Scalar("padding", PaddingId)], $"{path}.padding")], $"{path}.keep"));
    }

    /// <summary>The id padding positions hold (0).</summary>
    public const int PaddingId = 0;

    /// <summary>The id of a key outside the vocabulary (V + 1).</summary>
    public int UnknownId => VocabularySize + 1;

    /// <summary>Rows an embedding table needs: padding, the V keys, unknown.</summary>
    public int EmbeddingRows => VocabularySize + 2;

    /// <summary>
    /// The token input for a feature column of <paramref name="type"/>, or null when it is not a vector of keys.
    /// </summary>
    public static TokenInput? For(DataViewType type, string columnName, int maxLength, SequenceOverflow overflow)
    {
        if (type is not VectorDataViewType { ItemType: KeyDataViewType key }) return null;
        if (key.RawType != typeof(uint))
            throw new ArgumentException($"Feature column '{columnName}' holds keys of {key.RawType.Name}; token sequences must be UInt32 keys (MapValueToKey's default).", columnName);
        if (key.Count < 1 || key.Count > int.MaxValue - 2)
            throw new ArgumentException($"Feature column '{columnName}' is a key vector without a usable vocabulary size ({key.Count}).", columnName);
        if (maxLength < 1)
            throw new ArgumentOutOfRangeException(nameof(ITokenSequenceOptions.MaxSequenceLength), maxLength, "MaxSequenceLength must be at least 1.");
        return new TokenInput((int)key.Count, maxLength, overflow);
    }
}

/// <summary>A batch of token rows as the module needs it; padding trimmed to the batch's longest row.</summary>
/// <param name="Ids">Token ids, int64 [batch, length].</param>
/// <param name="Lengths">Real tokens per row, int64 [batch] (at least 1).</param>
/// <param name="Mask">True where a position holds a real token, bool [batch, length].</param>
public sealed record TokenBatch(Tensor Ids, Tensor Lengths, Tensor Mask)
{
    /// <summary>Reads a <c>[batch, MaxLength]</c> float input of token ids (as the core feeds every network).</summary>
    public static TokenBatch From(Tensor x)
    {
        var ids = x.to_type(ScalarType.Int64);
        var mask = ids.ne(TokenInput.PaddingId);
        var lengths = mask.sum(1, type: ScalarType.Int64);
        long longest = Math.Max(1, lengths.max().item<long>());
        if (longest < ids.shape[1])
        {
            ids = ids.narrow(1, 0, longest);
            mask = mask.narrow(1, 0, longest);
        }
        return new TokenBatch(ids, lengths, mask);
    }
}
