using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.DeepExtensions.Data;

/// <summary>
/// Reads the feature column (dense or sparse <see cref="VBuffer{T}"/>, or a Single) and, when training, the label column of
/// a cursor into contiguous float buffers; rejects NaN/∞ with a message naming the column, row and slot. Images are
/// decoded to planes, token sequences (key vectors) to padded ids as <see cref="TokenInput"/> describes.
/// </summary>
internal sealed class FeatureReader
{
    private readonly string _featureName;
    private readonly int _size;
    private readonly ValueGetter<VBuffer<float>>? _vector;
    private readonly ValueGetter<float>? _scalar;
    private readonly ValueGetter<MLImage>? _image;
    private readonly ImageShape? _shape;
    private readonly ValueGetter<VBuffer<uint>>? _keys;
    private readonly TokenInput? _tokens;
    private readonly SequenceInput? _sequence;
    private VBuffer<uint> _keyBuffer;
    private MLImage? _img;
    private readonly Func<float>? _label;
    private readonly ValueGetter<VBuffer<float>>? _labelVector;
    private VBuffer<float> _labelBuffer;
    private readonly ValueGetter<VBuffer<uint>>? _labelKeys;
    private VBuffer<uint> _labelKeyBuffer;

    /// <summary>The class index read for a step without a label (a missing key, or past the row's end): ignored by the loss.</summary>
    public const float NoClass = -1;
    private readonly string? _labelName;
    private VBuffer<float> _buffer;

    public FeatureReader(DataViewRow cursor, string featureName, int size, ImageShape? image = null, string? labelName = null, LabelInfo? label = null,
        TokenInput? tokens = null, SequenceInput? sequence = null)
    {
        _featureName = featureName;
        _size = size;
        var col = cursor.Schema[featureName];
        if (col.Type is VectorDataViewType { ItemType: KeyDataViewType })
        {
            _keys = cursor.GetGetter<VBuffer<uint>>(col);
            _tokens = tokens ?? throw new ArgumentException($"Feature column '{featureName}' holds token keys but no token input was given.", featureName);
        }
        else if (col.Type is VectorDataViewType)
        {
            _vector = cursor.GetGetter<VBuffer<float>>(col);
            if (SequenceInput.Reads(col.Type))
                _sequence = sequence ?? throw new ArgumentException($"Feature column '{featureName}' is a variable-length vector but no sequence input was given.", featureName);
        }
        else if (col.Type is ImageDataViewType)
        {
            _image = cursor.GetGetter<MLImage>(col);
            _shape = image ?? throw new ArgumentException($"Feature column '{featureName}' holds images but no image shape was given.", featureName);
        }
        else _scalar = cursor.GetGetter<float>(col);
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

    /// <summary>Copies the current row's features into <paramref name="dst"/> (length = size), checking sizes and finiteness.</summary>
    public void ReadFeatures(Span<float> dst, long row)
    {
        if (_scalar != null)
        {
            float v = 0;
            _scalar(ref v);
            dst[0] = v;
        }
        else if (_image != null)
        {
            _image(ref _img!);
            ReadImage(_img, dst, row);
            return;
        }
        else if (_keys != null)
        {
            ReadTokens(dst, row);
            return;
        }
        else
        {
            _vector!(ref _buffer);
            if (_sequence is not null) ReadSequence(dst, row);
            else if (_buffer.Length != _size)
                throw new InvalidOperationException($"Feature column '{_featureName}' has {_buffer.Length} values in row {row}; expected {_size}.");
            else if (_buffer.IsDense)
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

    /// <summary>
    /// A variable-length numeric row: its step count in slot 0, then its steps (the first or the last
    /// <see cref="SequenceInput.MaxSteps"/> of a longer row, as configured), then zeros.
    /// </summary>
    private void ReadSequence(Span<float> dst, long row)
    {
        var s = _sequence!;
        int n = _buffer.Length;
        if (n == 0)
            throw new InvalidOperationException($"Feature column '{_featureName}' has an empty sequence in row {row}; a sequence needs at least one step. Filter such rows first.");
        if (n % s.Features != 0)
            throw new InvalidOperationException(
                $"Feature column '{_featureName}' has {n} values in row {row}, not a whole number of steps of {s.Features} features (SequenceShape.Features).");
        int steps = n / s.Features;
        if (steps > s.MaxSteps && s.Overflow == SequenceOverflow.Error)
            throw new InvalidOperationException(
                $"Feature column '{_featureName}' has a sequence of {steps} steps in row {row}; the maximum is {s.MaxSteps}. " +
                "Raise MaxSequenceLength or set SequenceOverflow = Truncate or KeepLast.");
        int kept = Math.Min(steps, s.MaxSteps);
        int first = s.Overflow == SequenceOverflow.KeepLast ? steps - kept : 0;
        dst.Clear();
        dst[0] = kept;
        var values = dst.Slice(1, kept * s.Features);
        if (_buffer.IsDense) _buffer.GetValues().Slice(first * s.Features, values.Length).CopyTo(values);
        else
        {
            var v = _buffer.GetValues();
            var idx = _buffer.GetIndices();
            for (int i = 0; i < v.Length; i++)
            {
                int j = idx[i] - first * s.Features;
                if (j >= 0 && j < values.Length) values[j] = v[i];
            }
        }
    }

    /// <summary>The row's keys as ids (key k → k, key 0 → unknown), padded with 0; an empty row becomes one unknown token.</summary>
    private void ReadTokens(Span<float> dst, long row)
    {
        var t = _tokens!;
        _keys!(ref _keyBuffer);
        int n = _keyBuffer.Length;
        if (n > t.MaxLength && t.Overflow == SequenceOverflow.Error)
            throw new InvalidOperationException(
                $"Feature column '{_featureName}' has a sequence of {n} tokens in row {row}; the maximum is {t.MaxLength}. " +
                "Raise MaxSequenceLength or set SequenceOverflow = Truncate.");
        dst.Clear();
        if (n == 0)
        {
            dst[0] = t.UnknownId;
            return;
        }
        int i = 0, skip = t.Overflow == SequenceOverflow.KeepLast ? Math.Max(0, n - t.MaxLength) : 0;
        foreach (uint k in _keyBuffer.DenseValues())
        {
            if (skip > 0) { skip--; continue; }
            if (i == t.MaxLength) break;
            if (k > t.VocabularySize)
                throw new InvalidOperationException($"Feature column '{_featureName}' has key {k} in row {row}, outside its vocabulary of {t.VocabularySize}.");
            dst[i++] = k == 0 ? t.UnknownId : k;
        }
    }

    /// <summary>
    /// An <see cref="MLImage"/> as planar channels × height × width floats (0–255): one channel is the luminance,
    /// three are red, green, blue (four add alpha).
    /// </summary>
    private void ReadImage(MLImage? image, Span<float> dst, long row)
    {
        var s = _shape!;
        if (image is null)
            throw new InvalidOperationException($"Feature column '{_featureName}' has no image in row {row} (the file could not be loaded).");
        if (image.Width != s.Width || image.Height != s.Height)
            throw new InvalidOperationException(
                $"Feature column '{_featureName}' has a {image.Height}×{image.Width} image in row {row}; the network expects {s.Height}×{s.Width}. Add ResizeImages.");
        if (s.Channels is not (1 or 3 or 4))
            throw new InvalidOperationException($"Feature column '{_featureName}': images give 1 (gray), 3 (RGB) or 4 (RGBA) channels, not {s.Channels}.");
        if (image.PixelFormat is not (MLPixelFormat.Rgba32 or MLPixelFormat.Bgra32))
            throw new InvalidOperationException($"Feature column '{_featureName}' has an image of pixel format {image.PixelFormat} in row {row}; expected 32-bit RGBA or BGRA.");
        var px = image.Pixels;
        bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
        int plane = s.Height * s.Width;
        for (int i = 0; i < plane; i++)
        {
            byte r = px[4 * i + (bgra ? 2 : 0)], g = px[4 * i + 1], b = px[4 * i + (bgra ? 0 : 2)];
            if (s.Channels == 1) dst[i] = 0.299f * r + 0.587f * g + 0.114f * b;
            else
            {
                dst[i] = r; dst[plane + i] = g; dst[2 * plane + i] = b;
                if (s.Channels == 4) dst[3 * plane + i] = px[4 * i + 3];
            }
        }
    }

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
