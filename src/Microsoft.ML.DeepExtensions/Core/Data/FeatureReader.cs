using Microsoft.ML.Data;

namespace Microsoft.ML.DeepExtensions.Data;

/// <summary>
/// Reads the feature column (dense or sparse <see cref="VBuffer{T}"/>, or a Single) and, when training, the label column of
/// a cursor into contiguous float buffers; rejects NaN/∞ with a message naming the column, row and slot.
/// </summary>
internal sealed class FeatureReader
{
    private readonly string _featureName;
    private readonly int _size;
    private readonly ValueGetter<VBuffer<float>>? _vector;
    private readonly ValueGetter<float>? _scalar;
    private readonly Func<float>? _label;
    private readonly string? _labelName;
    private VBuffer<float> _buffer;

    public FeatureReader(DataViewRowCursor cursor, string featureName, int size, string? labelName = null, LabelInfo? label = null)
    {
        _featureName = featureName;
        _size = size;
        var col = cursor.Schema[featureName];
        if (col.Type is VectorDataViewType) _vector = cursor.GetGetter<VBuffer<float>>(col);
        else _scalar = cursor.GetGetter<float>(col);
        if (labelName != null && label != null)
        {
            _labelName = labelName;
            _label = LabelGetter(cursor, cursor.Schema[labelName], label);
        }
    }

    /// <summary>Columns a cursor must have active for this reader.</summary>
    public static IEnumerable<DataViewSchema.Column> Needed(DataViewSchema schema, string featureName, string? labelName) =>
        labelName is null ? [schema[featureName]] : [schema[featureName], schema[labelName]];

    /// <summary>Copies the current row's features into <paramref name="dst"/> (length = size), checking sizes and finiteness.</summary>
    public void ReadFeatures(Span<float> dst, long row)
    {
        if (_scalar != null)
        {
            float v = 0;
            _scalar(ref v);
            dst[0] = v;
        }
        else
        {
            _vector!(ref _buffer);
            if (_buffer.Length != _size)
                throw new InvalidOperationException($"Feature column '{_featureName}' has {_buffer.Length} values in row {row}; expected {_size}.");
            if (_buffer.IsDense)
                _buffer.GetValues().CopyTo(dst);
            else
            {
                dst.Clear();
                var values = _buffer.GetValues();
                var indices = _buffer.GetIndices();
                for (int i = 0; i < values.Length; i++) dst[indices[i]] = values[i];
            }
        }
        for (int i = 0; i < dst.Length; i++)
            if (!float.IsFinite(dst[i]))
                throw new InvalidOperationException(
                    $"Feature column '{_featureName}' has a non-finite value ({dst[i]}) in row {row}, slot {i}. " +
                    "Replace missing values first (mlContext.Transforms.ReplaceMissingValues) or filter the rows.");
    }

    /// <summary>The current row's label as a float: 0/1 (binary), 0-based class index (multiclass) or the value (regression).</summary>
    public float ReadLabel(long row)
    {
        float y = _label!();
        if (!float.IsFinite(y))
            throw new InvalidOperationException($"Label column '{_labelName}' has a non-finite or missing value in row {row}. Filter such rows before training.");
        return y;
    }

    private static Func<float> LabelGetter(DataViewRowCursor cursor, DataViewSchema.Column col, LabelInfo info)
    {
        string name = col.Name;
        switch (info.Kind)
        {
            case LabelKind.Boolean:
            {
                var g = cursor.GetGetter<bool>(col); bool v = false;
                return () => { g(ref v); return v ? 1f : 0f; };
            }
            case LabelKind.Key:
            {
                var g = cursor.GetGetter<uint>(col); uint v = 0;
                return () => { g(ref v); return v == 0 ? float.NaN : v - 1; };
            }
            case LabelKind.Single:
            {
                var g = cursor.GetGetter<float>(col); float v = 0;
                bool binary = info.Task == DeepTask.BinaryClassification;
                return () =>
                {
                    g(ref v);
                    if (binary && v != 0 && v != 1 && float.IsFinite(v))
                        throw new InvalidOperationException($"Label column '{name}' must hold 0 or 1 for binary classification; found {v}.");
                    return v;
                };
            }
            default:
            {
                var g = cursor.GetGetter<double>(col); double v = 0;
                bool binary = info.Task == DeepTask.BinaryClassification;
                return () =>
                {
                    g(ref v);
                    if (binary && v != 0 && v != 1 && double.IsFinite(v))
                        throw new InvalidOperationException($"Label column '{name}' must hold 0 or 1 for binary classification; found {v}.");
                    return (float)v;
                };
            }
        }
    }
}
