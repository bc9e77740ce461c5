using Microsoft.ML.Data;

namespace Microsoft.ML.DeepExtensions.Data;

/// <summary>
/// Reads a cursor's feature column — as its <see cref="FeatureInput"/> says — and, when training, its label column into
/// contiguous float buffers; bad values are rejected with a message naming the column, row and slot.
/// </summary>
internal sealed class FeatureReader
{
    private readonly IFeatureReader _features;
    private readonly Func<float>? _label;
    private readonly ValueGetter<VBuffer<float>>? _labelVector;
    private VBuffer<float> _labelBuffer;
    private readonly ValueGetter<VBuffer<uint>>? _labelKeys;
    private VBuffer<uint> _labelKeyBuffer;
    private readonly string? _labelName;

    /// <summary>The class index read for a step without a label (a missing key, or past the row's end): ignored by the loss.</summary>
    public const float NoClass = -1;

    public FeatureReader(DataViewRow cursor, string featureName, FeatureInput input, string? labelName = null, LabelInfo? label = null)
    {
        _features = input.Reader(cursor, featureName);
        if (labelName != null && label != null)
        {
            _labelName = labelName;
            if (label.Kind == LabelKind.SingleVector) _labelVector = cursor.GetGetter<VBuffer<float>>(cursor.Schema[labelName]);
            else if (label.Kind == LabelKind.KeyVector) _labelKeys = cursor.GetGetter<VBuffer<uint>>(cursor.Schema[labelName]);
            else _label = LabelGetter(cursor, cursor.Schema[labelName], label);
        }
    }

    /// <summary>Columns a cursor must have active for this reader.</summary>
    public static IEnumerable<DataViewSchema.Column> Needed(DataViewSchema schema, string featureName, string? labelName) =>
        labelName is null ? [schema[featureName]] : [schema[featureName], schema[labelName]];

    /// <summary>Copies the current row's features into <paramref name="dst"/> (the input's size), checking sizes and values.</summary>
    public void ReadFeatures(Span<float> dst, long row) => _features.Read(dst, row);

    /// <summary>
    /// The current row's label into <paramref name="dst"/> (one value, or the label vector's values): 0/1 (binary),
    /// 0-based class index (multiclass) or the value(s) (regression).
    /// </summary>
    public void ReadLabel(Span<float> dst, long row)
    {
        if (_labelKeys is not null)
        {
            // One class per step: key k → k − 1; missing keys and steps past the row's end → NoClass. Steps beyond the
            // width are dropped, as token features beyond MaxSequenceLength are.
            _labelKeys(ref _labelKeyBuffer);
            dst.Fill(NoClass);
            int i = 0;
            foreach (uint k in _labelKeyBuffer.DenseValues())
            {
                if (i == dst.Length) break;
                dst[i++] = k == 0 ? NoClass : k - 1;
            }
            return;
        }
        if (_labelVector is null)
        {
            dst[0] = ReadLabel(row);
            return;
        }
        _labelVector(ref _labelBuffer);
        if (_labelBuffer.Length != dst.Length)
            throw new InvalidOperationException($"Label column '{_labelName}' has {_labelBuffer.Length} values in row {row}; expected {dst.Length}.");
        _labelBuffer.CopyTo(dst);
        for (int i = 0; i < dst.Length; i++)
            if (!float.IsFinite(dst[i]))
                throw new InvalidOperationException($"Label column '{_labelName}' has a non-finite or missing value in row {row}, slot {i}. Filter such rows before training.");
    }

    /// <summary>The current row's (scalar) label as a float: 0/1 (binary), 0-based class index (multiclass) or the value (regression).</summary>
    public float ReadLabel(long row)
    {
        float y = _label!();
        if (!float.IsFinite(y))
            throw new InvalidOperationException($"Label column '{_labelName}' has a non-finite or missing value in row {row}. Filter such rows before training.");
        return y;
    }

    private static Func<float> LabelGetter(DataViewRow cursor, DataViewSchema.Column col, LabelInfo info)
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
