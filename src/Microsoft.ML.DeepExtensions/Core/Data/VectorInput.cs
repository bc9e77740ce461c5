using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.DeepExtensions;

/// <summary>A feature column that is a Single or a known-size vector of Single (dense or sparse): read as it is.</summary>
/// <param name="Size">Values per row.</param>
[SerializedName("vector")]
public sealed record VectorInput(int Size) : FeatureInput
{
    /// <inheritdoc />
    public override int Size { get; } = Size;

    /// <summary>Whether a column of this shape can be read as a vector (for <c>GetOutputSchema</c>).</summary>
    internal static bool Reads(SchemaShape.Column column) =>
        column.ItemType == NumberDataViewType.Single && !column.IsKey && column.Kind != SchemaShape.Column.VectorKind.VariableVector;

    /// <summary>The vector input for a column of <paramref name="type"/>; throws naming the column, with what to do, for anything else.</summary>
    internal static VectorInput For(DataViewType type, string column)
    {
        if (type == NumberDataViewType.Single) return new VectorInput(1);
        if (type is VectorDataViewType { ItemType: var item } v && item == NumberDataViewType.Single)
            return v.Size > 0 ? new VectorInput(v.Size) : throw new ArgumentException(
                $"Feature column '{column}' must be a vector of Single with a known size; it has a variable size ({type}). " +
                "Give it a fixed size (for example with Concatenate of fixed columns, or ResizeImages before ExtractPixels).", column);
        if (type is VectorDataViewType { ItemType: KeyDataViewType })
            throw new ArgumentException(
                $"Feature column '{column}' is a vector of keys (token ids); this trainer needs a vector of Single. " +
                "Use a sequence trainer (Lstm, Transformer) for token sequences, or featurize the text (FeaturizeText, ProduceWordBags).", column);
        if (type is ImageDataViewType)
            throw new ArgumentException($"Feature column '{column}' holds images; this trainer needs a vector of Single (use ExtractPixels), or use CnnTrainer.", column);
        throw new ArgumentException(
            $"Feature column '{column}' must be a known-size vector of Single (or a Single); found {type}. " +
            "Convert it with mlContext.Transforms.Conversion.ConvertType(..., DataKind.Single) or build it with Concatenate.", column);
    }

    internal override void Check(DataViewType type, string column)
    {
        int size = For(type, column).Size;
        if (size != Size)
            throw new ArgumentException($"Feature column '{column}' has {size} values, but the model was trained on {Size}.", column);
    }

    internal override IFeatureReader Reader(DataViewRow row, string column) => row.Schema[column].Type is VectorDataViewType
        ? new VectorReader(row.GetGetter<VBuffer<float>>(row.Schema[column]), column, Size)
        : new ScalarReader(row.GetGetter<float>(row.Schema[column]), column);

    private sealed class ScalarReader(ValueGetter<float> getter, string column) : IFeatureReader
    {
        public void Read(Span<float> dst, long row)
        {
            float v = 0;
            getter(ref v);
            dst[0] = v;
            FiniteValues.Check(dst[..1], column, row);
        }
    }

    /// <summary>Dense or sparse vectors of a fixed size.</summary>
    internal sealed class VectorReader(ValueGetter<VBuffer<float>> getter, string column, int size) : IFeatureReader
    {
        private VBuffer<float> _buffer;

        public void Read(Span<float> dst, long row)
        {
            getter(ref _buffer);
            if (_buffer.Length != size)
                throw new InvalidOperationException($"Feature column '{column}' has {_buffer.Length} values in row {row}; expected {size}.");
            if (_buffer.IsDense) _buffer.GetValues().CopyTo(dst);
            else
            {
                dst[..size].Clear();
                var values = _buffer.GetValues();
                var indices = _buffer.GetIndices();
                for (int i = 0; i < values.Length; i++) dst[indices[i]] = values[i];
            }
            FiniteValues.Check(dst[..size], column, row);
        }
    }
}
