using Microsoft.ML.Data;
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
public sealed record SequenceInput(int Features, int MaxSteps, SequenceOverflow Overflow = SequenceOverflow.Truncate)
{
    /// <summary>Floats per row the network reads: the step count, then <see cref="MaxSteps"/> × <see cref="Features"/> values.</summary>
    public int Size => 1 + MaxSteps * Features;

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
        var lengths = x.select(1, 0).round().to_type(ScalarType.Int64).clamp(1, input.MaxSteps);
        long longest = lengths.max().item<long>();
        var values = x.narrow(1, 1, longest * input.Features).reshape(x.shape[0], longest, input.Features);
        return new SequenceBatch(values, lengths);
    }
}
