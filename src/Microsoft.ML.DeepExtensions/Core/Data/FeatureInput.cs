using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Persistence;

namespace Microsoft.ML.DeepExtensions
{
    /// <summary>
    /// How a feature column becomes the network's input: <see cref="Size"/> floats per row, which the core batches into
    /// one tensor. Each kind is a small type of its own — <see cref="VectorInput"/> (a vector of Single),
    /// <see cref="ImageInput"/> (an image or its pixels), <see cref="TokenInput"/> (token ids), <see cref="SequenceInput"/>
    /// (a variable-length numeric sequence) — that knows which column types it reads, how a row is read and checked,
    /// and how its values are standardised; the core calls it without knowing which kind it has. A trainer says which
    /// kind it reads for a column; the network's spec stores it, so a saved model reads its column the same way.
    /// </summary>
    public abstract record FeatureInput
    {
        /// <summary>Floats per row the network reads.</summary>
        public abstract int Size { get; }

        /// <summary>Registers an input kind of another assembly (it must carry <see cref="SerializedNameAttribute"/>) so that models reading it save and load.</summary>
        public static void Register(Type inputType) => SerializedTypes.Register(typeof(FeatureInput), inputType);

        /// <summary>Whether the values are standardised before the network sees them (token ids are not).</summary>
        internal virtual bool Standardized => true;

        /// <summary>For a row of steps (tokens): how many, so a label with one class per step knows its width; null otherwise.</summary>
        internal virtual int? Steps => null;

        /// <summary>Checks that a column of <paramref name="type"/> can be read as this input (same kind and size); throws naming <paramref name="column"/>.</summary>
        internal abstract void Check(DataViewType type, string column);

        /// <summary>A reader of <paramref name="column"/> in <paramref name="row"/>: <see cref="Size"/> floats per row, bad values rejected by column, row and slot.</summary>
        internal abstract IFeatureReader Reader(DataViewRow row, string column);

        /// <summary>Running statistics the first pass keeps (default: one per slot).</summary>
        internal virtual int StatisticsCount => Size;

        /// <summary>Feeds a read row into the running statistics (default: slot k into statistic k).</summary>
        internal virtual void Observe(ReadOnlySpan<float> row, RunningStatistics stats)
        {
            for (int k = 0; k < row.Length; k++) stats.Add(k, k, row[k]);
        }

        /// <summary>Per-slot mean and deviation from the running statistics.</summary>
        internal virtual (float[] Mean, float[] Std) SlotStatistics(RunningStatistics stats) => (stats.Means(), stats.Deviations());

        /// <summary>
        /// True when <see cref="SlotStatistics"/> are already what the network standardises with (a sequence's per-feature
        /// statistics over real steps); false lets the trainer pool them (per slot, per image, per step feature).
        /// </summary>
        internal virtual bool StatisticsFinal => false;

        /// <summary>
        /// How an exported ONNX graph takes this input: its graph inputs (the first named <paramref name="column"/>, batch
        /// first) and the name of the float [N, <see cref="Size"/>] value the network reads, built from them. By default
        /// the input is that float vector itself.
        /// </summary>
        internal virtual (global::Onnx.ValueInfoProto[] Inputs, string Floats) OnnxInput(Onnx.OnnxGraph graph, string column) =>
            ([Onnx.OnnxGraph.Value(column, global::Onnx.TensorProto.Types.DataType.Float, [null, Size])], column);
    }
}

namespace Microsoft.ML.DeepExtensions.Data
{
    /// <summary>Reads the current row's feature column into a span of <see cref="FeatureInput.Size"/> floats.</summary>
    internal interface IFeatureReader
    {
        void Read(Span<float> dst, long row);
    }

    /// <summary>Welford running means and deviations (one per statistic) and per-slot minima and maxima.</summary>
    internal sealed class RunningStatistics(int statistics, int slots)
    {
        private readonly double[] _mean = new double[statistics];
        private readonly double[] _m2 = new double[statistics];
        private readonly long[] _count = new long[statistics];

        public float[] Min { get; } = Enumerable.Repeat(float.PositiveInfinity, slots).ToArray();
        public float[] Max { get; } = Enumerable.Repeat(float.NegativeInfinity, slots).ToArray();

        /// <summary>Adds <paramref name="value"/> of <paramref name="slot"/> to statistic <paramref name="stat"/>.</summary>
        public void Add(int stat, int slot, float value)
        {
            double delta = value - _mean[stat];
            _mean[stat] += delta / ++_count[stat];
            _m2[stat] += delta * (value - _mean[stat]);
            if (value < Min[slot]) Min[slot] = value;
            if (value > Max[slot]) Max[slot] = value;
        }

        public float[] Means() => _mean.Select(m => (float)m).ToArray();

        public float[] Deviations() => _m2.Select((v, i) => (float)Math.Sqrt(v / Math.Max(_count[i], 1))).ToArray();
    }

    /// <summary>The finiteness check every float input makes.</summary>
    internal static class FiniteValues
    {
        public static void Check(ReadOnlySpan<float> values, string column, long row, int offset = 0)
        {
            for (int i = 0; i < values.Length; i++)
                if (!float.IsFinite(values[i]))
                    throw new InvalidOperationException(
                        $"Feature column '{column}' has a non-finite value ({values[i]}) in row {row}, slot {offset + i}. " +
                        "Replace missing values first (mlContext.Transforms.ReplaceMissingValues) or filter the rows.");
        }
    }
}
