using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Persistence;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// The prediction columns a model appends to an input schema, and per-row getters over a batch of network outputs.
/// One definition serves <see cref="DeepTransformer.GetOutputSchema"/>, Transform and the PredictionEngine path.
/// </summary>
internal sealed class OutputColumns
{
    public OutputColumns(DataViewSchema input, ModelManifest manifest)
    {
        Input = input;
        Manifest = manifest;
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(input);
        foreach (var (name, type, annotations) in Columns(manifest))
            builder.AddColumn(name, type, annotations);
        Schema = builder.ToSchema();
        Width = manifest.FeaturesColumnName is not null ? manifest.FeaturesSize
            : manifest.Task == DeepTask.MulticlassClassification ? manifest.ClassCount * manifest.LabelWidth
            : manifest.Task == DeepTask.Regression ? manifest.Spec.OutputSize : 1;
    }

    public DataViewSchema Input { get; }
    public ModelManifest Manifest { get; }
    public DataViewSchema Schema { get; }
    /// <summary>Network outputs per row.</summary>
    public int Width { get; }
    public int InputCount => Input.Count;
    public int FeatureSize => Manifest.Spec.InputSize;

    /// <summary>The appended columns: name, type, annotations.</summary>
    public static IEnumerable<(string Name, DataViewType Type, DataViewSchema.Annotations? Annotations)> Columns(ModelManifest m)
    {
        if (m.FeaturesColumnName is string features)
        {
            yield return (features, new VectorDataViewType(NumberDataViewType.Single, m.FeaturesSize), null);
            yield break;
        }
        switch (m.Task)
        {
            case DeepTask.BinaryClassification:
                yield return (ColumnNames.Score, NumberDataViewType.Single, null);
                if (m.HasProbability) yield return (ColumnNames.Probability, NumberDataViewType.Single, null);
                yield return (ColumnNames.PredictedLabel, BooleanDataViewType.Instance, null);
                break;
            case DeepTask.MulticlassClassification:
            {
                var scoreAnn = new DataViewSchema.Annotations.Builder();
                if (m.LabelKeyValues is { } kv && kv.Values.Length == m.ClassCount)
                {
                    var names = kv.SlotNames();
                    scoreAnn.Add("SlotNames", new VectorDataViewType(TextDataViewType.Instance, names.Length), (ref VBuffer<ReadOnlyMemory<char>> dst) => dst = new VBuffer<ReadOnlyMemory<char>>(names.Length, names));
                }
                var keyAnn = new DataViewSchema.Annotations.Builder();
                m.LabelKeyValues?.AddTo(keyAnn);
                var key = new KeyDataViewType(typeof(uint), m.ClassCount);
                if (m.LabelWidth > 1)
                {
                    // One class per step: Score holds steps × classes probabilities (step-major), PredictedLabel a key per step.
                    yield return (ColumnNames.Score, new VectorDataViewType(NumberDataViewType.Single, m.ClassCount * m.LabelWidth), null);
                    yield return (ColumnNames.PredictedLabel, new VectorDataViewType(key, m.LabelWidth), keyAnn.ToAnnotations());
                    break;
                }
                yield return (ColumnNames.Score, new VectorDataViewType(NumberDataViewType.Single, m.ClassCount), scoreAnn.ToAnnotations());
                yield return (ColumnNames.PredictedLabel, key, keyAnn.ToAnnotations());
                break;
            }
            default:
                // Multi-output regression (a vector label, e.g. one value per step) scores a vector.
                yield return (ColumnNames.Score, m.Spec.OutputSize > 1 ? new VectorDataViewType(NumberDataViewType.Single, m.Spec.OutputSize) : NumberDataViewType.Single, null);
                break;
        }
    }

    /// <summary>
    /// The logistic of a logit, kept within [1e-7, 1 − 1e-7] (as scikit-learn clips for log-loss): a float sigmoid
    /// saturates to exactly 0 or 1 beyond |z| ≈ 17, which would make ML.NET's log-loss infinite.
    /// </summary>
    public static float Probability(float logit) => (float)Math.Clamp(1 / (1 + Math.Exp(-logit)), 1e-7, 1 - 1e-7);

    private ValueGetter<VBuffer<float>> VectorGetter(Func<float[]> batch, Func<int> row)
    {
        int k = Width;
        return (ref VBuffer<float> dst) =>
        {
            var editor = VBufferEditor.Create(ref dst, k);
            batch().AsSpan(row() * k, k).CopyTo(editor.Values);
            dst = editor.Commit();
        };
    }

    /// <summary>Whether output column <paramref name="index"/> (schema index) is one of ours.</summary>
    public bool IsOutput(int index) => index >= InputCount;

    /// <summary>
    /// A getter for output column <paramref name="index"/> that reads row <paramref name="row"/>() of the batch
    /// <paramref name="batch"/>() (the network outputs, <see cref="Width"/> per row).
    /// </summary>
    public Delegate Getter(int index, Func<float[]> batch, Func<int> row)
    {
        string name = Schema[index].Name;
        if (Manifest.FeaturesColumnName is not null) return VectorGetter(batch, row);
        switch (Manifest.Task)
        {
            case DeepTask.MulticlassClassification when name == ColumnNames.Score:
                return VectorGetter(batch, row);
            case DeepTask.MulticlassClassification when Manifest.LabelWidth > 1:
            {
                int steps = Manifest.LabelWidth, k = Manifest.ClassCount;
                return (ValueGetter<VBuffer<uint>>)((ref VBuffer<uint> dst) =>
                {
                    var s = batch().AsSpan(row() * Width, Width);
                    var editor = VBufferEditor.Create(ref dst, steps);
                    for (int t = 0; t < steps; t++)
                    {
                        var step = s.Slice(t * k, k);
                        int best = 0;
                        for (int i = 1; i < k; i++) if (step[i] > step[best]) best = i;
                        editor.Values[t] = (uint)best + 1;
                    }
                    dst = editor.Commit();
                });
            }
            case DeepTask.MulticlassClassification:
            {
                int k = Width;
                return (ValueGetter<uint>)((ref uint dst) =>
                {
                    var s = batch().AsSpan(row() * k, k);
                    int best = 0;
                    for (int i = 1; i < k; i++) if (s[i] > s[best]) best = i;
                    dst = (uint)best + 1;
                });
            }
            case DeepTask.BinaryClassification when name == ColumnNames.PredictedLabel:
                return (ValueGetter<bool>)((ref bool dst) => dst = batch()[row()] > 0);
            case DeepTask.BinaryClassification when name == ColumnNames.Probability:
                return (ValueGetter<float>)((ref float dst) => dst = Probability(batch()[row()]));
            case DeepTask.Regression when Width > 1:
                return VectorGetter(batch, row);
            default:
                return (ValueGetter<float>)((ref float dst) => dst = batch()[row()]);
        }
    }
}
