using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// How a variable-length numeric sequence — a vector of Single of any length holding steps × <see cref="Features"/>
/// values (step-major: step 0's values, then step 1's, ...) — becomes the network's fixed-width input of
/// <see cref="Size"/> floats: slot 0 holds the row's step count, then up to <see cref="MaxSteps"/> steps of values, then
/// zeros. Padding never reaches a result: standardisation statistics are taken over real steps only, and modules read a
/// batch back as values and lengths with <see cref="SequenceBatch.From"/> (a recurrent network packs by length). Rows
/// longer than <see cref="MaxSteps"/> are truncated — <see cref="SequenceOverflow.Truncate"/> keeps the first steps,
/// <see cref="SequenceOverflow.KeepLast"/> the most recent (what a forecaster wants) — or rejected
/// (<see cref="SequenceOverflow.Error"/>). An empty row, or one whose length is not a multiple of
/// <see cref="Features"/>, is an error naming the column and row.
/// </summary>
/// <param name="Features">Values per step F.</param>
/// <param name="MaxSteps">Steps read per row at most.</param>
/// <param name="Overflow">What happens to longer rows.</param>
[SerializedName("sequence")]
public sealed record SequenceInput(int Features, int MaxSteps, SequenceOverflow Overflow = SequenceOverflow.Truncate) : FeatureInput
{
    /// <summary>Floats per row the network reads: the step count, then <see cref="MaxSteps"/> × <see cref="Features"/> values.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public override int Size => 1 + MaxSteps * Features;

    /// <summary>Whether a column of this shape is a variable-length vector of Single (for <c>GetOutputSchema</c>).</summary>
    internal static bool Reads(SchemaShape.Column column) =>
        column.ItemType == NumberDataViewType.Single && !column.IsKey && column.Kind == SchemaShape.Column.VectorKind.VariableVector;

    internal override void Check(DataViewType type, string column)
    {
        if (!Reads(type))
            throw new ArgumentException($"Feature column '{column}' must be a variable-length vector of Single (steps × {Features} values) as in training; found {type}.", column);
    }

    internal override IFeatureReader Reader(DataViewRow row, string column) => new SequenceReader(row.GetGetter<VBuffer<float>>(row.Schema[column]), column, this);

    /// <summary>Statistics per step feature, over real steps only (padding and the length slot excluded).</summary>
    internal override int StatisticsCount => Features;

    internal override void Observe(ReadOnlySpan<float> row, RunningStatistics stats)
    {
        int end = 1 + (int)row[0] * Features;
        for (int k = 1; k < end; k++) stats.Add((k - 1) % Features, k, row[k]);
    }

    /// <summary>Each step feature's statistics repeated per step; 0/1 for the length slot.</summary>
    internal override (float[] Mean, float[] Std) SlotStatistics(RunningStatistics stats)
    {
        var mean = stats.Means();
        var std = stats.Deviations();
        return ([0f, .. Enumerable.Range(0, Size - 1).Select(k => mean[k % Features])], [1f, .. Enumerable.Range(0, Size - 1).Select(k => std[k % Features])]);
    }

    internal override bool StatisticsFinal => true;

    /// <summary>
    /// A variable-length numeric row: its step count in slot 0, then its steps (the first or the last
    /// <see cref="MaxSteps"/> of a longer row, as configured), then zeros.
    /// </summary>
    private sealed class SequenceReader(ValueGetter<VBuffer<float>> getter, string column, SequenceInput s) : IFeatureReader
    {
        private VBuffer<float> _buffer;

        public void Read(Span<float> dst, long row)
        {
            getter(ref _buffer);
            int n = _buffer.Length;
            if (n == 0)
                throw new InvalidOperationException($"Feature column '{column}' has an empty sequence in row {row}; a sequence needs at least one step. Filter such rows first.");
            if (n % s.Features != 0)
                throw new InvalidOperationException(
                    $"Feature column '{column}' has {n} values in row {row}, not a whole number of steps of {s.Features} features (SequenceShape.Features).");
            int steps = n / s.Features;
            if (steps > s.MaxSteps && s.Overflow == SequenceOverflow.Error)
                throw new InvalidOperationException(
                    $"Feature column '{column}' has a sequence of {steps} steps in row {row}; the maximum is {s.MaxSteps}. " +
                    "Raise MaxSequenceLength or set SequenceOverflow = Truncate or KeepLast.");
            int kept = Math.Min(steps, s.MaxSteps);
            int first = s.Overflow == SequenceOverflow.KeepLast ? steps - kept : 0;
            dst[..s.Size].Clear();
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
            FiniteValues.Check(values, column, row, offset: 1);
        }
    }

    /// <summary>
    /// In ONNX the column is float steps [N, T, <see cref="Features"/>] of any length T (rows padded at the end) and
    /// <c>{column}_lengths</c> int64 [N], each row's real steps; rows are cut to <see cref="MaxSteps"/> (the first steps,
    /// as <see cref="SequenceOverflow.Truncate"/> does).
    /// </summary>
    internal override (global::Onnx.ValueInfoProto[] Inputs, string Floats) OnnxInput(Onnx.OnnxGraph g, string column)
    {
        if (Overflow == SequenceOverflow.KeepLast)
            throw new NotSupportedException($"ONNX export: feature column '{column}' keeps the last steps of long rows (SequenceOverflow.KeepLast), which the exported graph cannot do for padded rows; train with Truncate to export.");
        string lengthsName = g.Reserve($"{column}_lengths");
        var steps = Onnx.OnnxGraph.Value(column, global::Onnx.TensorProto.Types.DataType.Float, [null, null, Features], "T");
        var lengths = Onnx.OnnxGraph.Value(lengthsName, global::Onnx.TensorProto.Types.DataType.Int64, [null]);
        string values = g.FitLength(g.Reshape(column, [0, -1], $"{column}_flat"), MaxSteps, $"{column}_values", Features);
        string kept = g.Node("Cast", [g.Node("Min", [lengthsName, g.Ints("max_steps", MaxSteps)], $"{column}_kept")], $"{column}_kept_f",
            ("to", (long)global::Onnx.TensorProto.Types.DataType.Float));
        string floats = g.Node("Concat", [g.Node("Unsqueeze", [kept, g.Ints("axes", 1)], $"{column}_length_slot"), values], $"{column}_row", ("axis", 1L));
        return ([steps, lengths], floats);
    }

    /// <summary>True for a variable-length vector of Single (the column type a <see cref="SequenceInput"/> reads).</summary>
    public static bool Reads(DataViewType type) => type is VectorDataViewType { Size: 0 } v && v.ItemType == NumberDataViewType.Single;

    /// <summary>Checks the settings; throws naming the offending one.</summary>
    public void Validate()
    {
        if (Features < 1) throw new ArgumentOutOfRangeException(nameof(Features), Features, "A sequence needs at least 1 value per step.");
        if (MaxSteps < 1) throw new ArgumentOutOfRangeException(nameof(ITokenSequenceOptions.MaxSequenceLength), MaxSteps, "MaxSequenceLength must be at least 1.");
    }
}

/// <summary>A batch of numeric sequences as a module needs it; padding trimmed to the batch's longest row.</summary>
/// <param name="Values">Step values, float [batch, steps, features].</param>
/// <param name="Lengths">Real steps per row, int64 [batch] (at least 1).</param>
public sealed record SequenceBatch(Tensor Values, Tensor Lengths)
{
    /// <summary>Reads a <c>[batch, Size]</c> float input laid out as <paramref name="input"/> describes (as the core feeds every network).</summary>
    public static SequenceBatch From(Tensor x, SequenceInput input)
    {
        using var shortest = 1L.ToScalar();   // held for the call: TorchSharp's temporaries can be finalized mid-call
        using var longestAllowed = ((long)input.MaxSteps).ToScalar();
        var lengths = x.select(1, 0).round().to_type(ScalarType.Int64).clamp(shortest, longestAllowed);
        long longest = lengths.max().item<long>();
        var values = x.narrow(1, 1, longest * input.Features).reshape(x.shape[0], longest, input.Features);
        return new SequenceBatch(values, lengths);
    }
}
