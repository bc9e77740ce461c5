using Microsoft.ML.Data;

namespace Microsoft.ML.DeepExtensions.Data;

/// <summary>What the label column says about the task.</summary>
internal sealed class LabelInfo
{
    public DeepTask Task { get; init; }
    /// <summary>Classes (2 for binary, K for multiclass, 0 for regression).</summary>
    public int ClassCount { get; init; }
    /// <summary>The label's KeyValues annotation (multiclass), kept so PredictedLabel can carry it.</summary>
    public KeyValuesInfo? KeyValues { get; init; }
    /// <summary>How raw label values are read.</summary>
    public LabelKind Kind { get; init; }
    /// <summary>
    /// Label values per row: 1, or the size of a vector label — multi-output regression (Single vector) or one class per
    /// step (Key vector, multiclass; missing keys and steps past the row's end are ignored by the loss and the metric).
    /// </summary>
    public int Width { get; init; } = 1;
}

internal enum LabelKind { Boolean, Key, Single, Double, SingleVector, KeyVector }

/// <summary>Schema validation shared by Fit, GetOutputSchema and Transform: every message names the column and what was expected.</summary>
internal static class ColumnChecks
{
    public static DataViewSchema.Column Find(DataViewSchema schema, string name, string role)
    {
        if (schema.GetColumnOrNull(name) is { } col) return col;
        var available = string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"));
        throw new ArgumentException($"{role} column '{name}' was not found in the data. Available columns: {available}.", name);
    }

    /// <summary>
    /// Infers (or checks) the task from the label column. A variable-size Key vector label (one class per token) takes its
    /// width from <paramref name="steps"/> (the token input's maximum length).
    /// </summary>
    public static LabelInfo Label(DataViewSchema schema, string name, DeepTask requested, int? steps = null)
    {
        var col = Find(schema, name, "Label");
        var type = col.Type;
        if (type is VectorDataViewType { ItemType: KeyDataViewType perStep } keys)
        {
            if (requested is not (DeepTask.Auto or DeepTask.MulticlassClassification))
                throw new ArgumentException($"Label column '{name}' is a vector of keys (one class per step); that is multiclass sequence labelling, not {requested}.", name);
            if (perStep.RawType != typeof(uint) || perStep.Count < 1 || perStep.Count > int.MaxValue)
                throw new ArgumentException($"Label column '{name}' must be a vector of UInt32 keys with a known class count (MapValueToKey); found {type}.", name);
            int width = keys.Size > 0 ? keys.Size : steps ?? throw new ArgumentException(
                $"Label column '{name}' is a variable-length key vector; that needs token-sequence features (their maximum length sets the steps) or a known-size vector.", name);
            return new LabelInfo { Task = DeepTask.MulticlassClassification, Kind = LabelKind.KeyVector, Width = width, ClassCount = (int)perStep.Count, KeyValues = KeyValuesInfo.FromColumn(col) };
        }
        LabelKind kind;
        DeepTask inferred;
        if (type == BooleanDataViewType.Instance) { kind = LabelKind.Boolean; inferred = DeepTask.BinaryClassification; }
        else if (type is KeyDataViewType) { kind = LabelKind.Key; inferred = DeepTask.MulticlassClassification; }
        else if (type == NumberDataViewType.Single) { kind = LabelKind.Single; inferred = DeepTask.Regression; }
        else if (type == NumberDataViewType.Double) { kind = LabelKind.Double; inferred = DeepTask.Regression; }
        else if (type is VectorDataViewType { ItemType: var item, Size: > 0 } && item == NumberDataViewType.Single)
        {
            if (requested is not (DeepTask.Auto or DeepTask.Regression))
                throw new ArgumentException($"Label column '{name}' is a vector of Single ({type}); a vector label is a multi-output regression target, not {requested}.", name);
            return new LabelInfo { Task = DeepTask.Regression, Kind = LabelKind.SingleVector, Width = ((VectorDataViewType)type).Size };
        }
        else
            throw new ArgumentException(
                $"Label column '{name}' must be Boolean (binary classification), Key (multiclass; use MapValueToKey), Single/Double (regression) or a known-size vector of Single (multi-output regression); found {type}.", name);

        var task = requested == DeepTask.Auto ? inferred : requested;
        switch (task)
        {
            case DeepTask.MulticlassClassification when kind != LabelKind.Key:
                throw new ArgumentException($"Label column '{name}' must be a Key type for multiclass classification (use mlContext.Transforms.Conversion.MapValueToKey(\"{name}\")); found {type}.", name);
            case DeepTask.BinaryClassification when kind == LabelKind.Key:
                throw new ArgumentException($"Label column '{name}' is a Key; binary classification needs a Boolean label (or 0/1 Single). Use multiclass, or convert it.", name);
            case DeepTask.Regression when kind is LabelKind.Boolean or LabelKind.Key:
                throw new ArgumentException($"Label column '{name}' must be Single or Double for regression; found {type}.", name);
        }

        if (task == DeepTask.MulticlassClassification)
        {
            var key = (KeyDataViewType)type;
            if (key.Count > int.MaxValue || key.Count < 1)
                throw new ArgumentException($"Label column '{name}' is a Key type without a usable class count ({key.Count}).", name);
            return new LabelInfo { Task = task, Kind = kind, ClassCount = (int)key.Count, KeyValues = KeyValuesInfo.FromColumn(col) };
        }
        return new LabelInfo { Task = task, Kind = kind, ClassCount = task == DeepTask.BinaryClassification ? 2 : 0 };
    }

    /// <summary>The column of <paramref name="shape"/> named <paramref name="name"/>, or null.</summary>
    public static SchemaShape.Column? Find(SchemaShape shape, string name) =>
        shape.Where(c => c.Name == name).Select(c => (SchemaShape.Column?)c).LastOrDefault();

    /// <summary>
    /// SchemaShape version of the checks, for <c>GetOutputSchema</c> (no data needed): the feature column must be one that
    /// <paramref name="reads"/> accepts (<paramref name="expected"/> says which), the label a supported label type.
    /// </summary>
    public static void CheckShape(SchemaShape shape, string featureName, string labelName, Func<SchemaShape.Column, bool> reads, string expected)
    {
        if (Find(shape, featureName) is not { } f)
            throw new ArgumentException($"Feature column '{featureName}' was not found in the input schema.", featureName);
        if (!reads(f))
            throw new ArgumentException($"Feature column '{featureName}' must be {expected}; found {f.Kind} of {f.ItemType}.", featureName);
        if (Find(shape, labelName) is not { } l)
            throw new ArgumentException($"Label column '{labelName}' was not found in the input schema.", labelName);
        bool ok = l.Kind == SchemaShape.Column.VectorKind.Scalar &&
                  (l.IsKey || l.ItemType == BooleanDataViewType.Instance || l.ItemType == NumberDataViewType.Single || l.ItemType == NumberDataViewType.Double)
                  || l.Kind == SchemaShape.Column.VectorKind.Vector && l.ItemType == NumberDataViewType.Single && !l.IsKey
                  || l.Kind != SchemaShape.Column.VectorKind.Scalar && l.IsKey;
        if (!ok)
            throw new ArgumentException($"Label column '{labelName}' must be a scalar Boolean, Key, Single or Double, a known-size vector of Single, or a vector of keys (one class per step); found {l.Kind} of {l.ItemType}.", labelName);
    }
}

/// <summary>A KeyValues annotation in a serialisable form (values as invariant strings plus their type).</summary>
internal sealed class KeyValuesInfo
{
    public string ItemType { get; set; } = "Text";
    public string[] Values { get; set; } = [];

    public static KeyValuesInfo? FromColumn(DataViewSchema.Column col)
    {
        var ann = col.Annotations.Schema.GetColumnOrNull("KeyValues");
        if (ann is not { } a || a.Type is not VectorDataViewType vt) return null;
        var item = vt.ItemType;
        string[]? values = item switch
        {
            TextDataViewType => Read<ReadOnlyMemory<char>>(col, v => v.ToString()),
            _ when item == NumberDataViewType.Single => Read<float>(col, v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)),
            _ when item == NumberDataViewType.Double => Read<double>(col, v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture)),
            _ when item == NumberDataViewType.Int32 => Read<int>(col, v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            _ when item == NumberDataViewType.Int64 => Read<long>(col, v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            _ when item == NumberDataViewType.UInt32 => Read<uint>(col, v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            _ when item == BooleanDataViewType.Instance => Read<bool>(col, v => v.ToString()),
            _ => null,
        };
        return values is null ? null : new KeyValuesInfo { ItemType = TypeName(item), Values = values };
    }

    private static string[] Read<T>(DataViewSchema.Column col, Func<T, string> format)
    {
        VBuffer<T> buffer = default;
        col.GetKeyValues(ref buffer);
        return buffer.DenseValues().Select(format).ToArray();
    }

    private static string TypeName(DataViewType t) =>
        t is TextDataViewType ? "Text" : t == NumberDataViewType.Single ? "Single" : t == NumberDataViewType.Double ? "Double" :
        t == NumberDataViewType.Int32 ? "Int32" : t == NumberDataViewType.Int64 ? "Int64" : t == NumberDataViewType.UInt32 ? "UInt32" : "Boolean";

    /// <summary>Adds this as a KeyValues annotation to <paramref name="builder"/>.</summary>
    public void AddTo(DataViewSchema.Annotations.Builder builder)
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        switch (ItemType)
        {
            case "Text": Add(builder, TextDataViewType.Instance, Values.Select(v => v.AsMemory())); break;
            case "Single": Add(builder, NumberDataViewType.Single, Values.Select(v => float.Parse(v, inv))); break;
            case "Double": Add(builder, NumberDataViewType.Double, Values.Select(v => double.Parse(v, inv))); break;
            case "Int32": Add(builder, NumberDataViewType.Int32, Values.Select(v => int.Parse(v, inv))); break;
            case "Int64": Add(builder, NumberDataViewType.Int64, Values.Select(v => long.Parse(v, inv))); break;
            case "UInt32": Add(builder, NumberDataViewType.UInt32, Values.Select(v => uint.Parse(v, inv))); break;
            default: Add(builder, BooleanDataViewType.Instance, Values.Select(bool.Parse)); break;
        }
    }

    private static void Add<T>(DataViewSchema.Annotations.Builder builder, PrimitiveDataViewType type, IEnumerable<T> values)
    {
        var arr = values.ToArray();
        builder.Add("KeyValues", new VectorDataViewType(type, arr.Length), (ref VBuffer<T> dst) => dst = new VBuffer<T>(arr.Length, arr));
    }

    /// <summary>The values as display strings (slot names of the multiclass Score).</summary>
    public ReadOnlyMemory<char>[] SlotNames() => Values.Select(v => v.AsMemory()).ToArray();
}
