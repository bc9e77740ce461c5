using System.Reflection;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Persistence;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// A weighted average of fitted ML.NET models that score the same task on the same input: any mix of deep and classic
/// trainers (Caruana et al. 2004's ensemble, which the comparison selects). Multiclass: the members' class probabilities
/// (<c>Score</c>) are averaged and <c>PredictedLabel</c> is the most probable class; binary: the members'
/// <c>Probability</c> is averaged, <c>Score</c> is its logit and <c>PredictedLabel</c> is <c>Probability &gt; 0.5</c>;
/// regression: <c>Score</c> is averaged. Every other output column is the first member's. It saves and loads with
/// <c>mlContext.Model.Save/Load</c> (each member stored as its own model inside), and works with a PredictionEngine.
/// </summary>
public sealed class WeightedEnsembleTransformer : ITransformer, ICanSaveModel, IDisposable
{
    internal const string LoaderSignature = "DeepExtensionsEnsemble";
    private const string ModelSignature = "DEEPXENS";
    private const uint ModelVersion = 0x00010001;

    private readonly ITransformer[] _members;
    private readonly double[] _weights;

    /// <summary>
    /// Creates the ensemble. <paramref name="weights"/> (one per member, non-negative, not all zero) are normalised to sum
    /// to 1; <paramref name="inputSchema"/> is what the members read (it is stored with each member when saved).
    /// </summary>
    public WeightedEnsembleTransformer(IReadOnlyList<ITransformer> members, IReadOnlyList<double> weights, DeepTask task, DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(inputSchema);
        if (members.Count == 0) throw new ArgumentException("An ensemble needs at least one member.", nameof(members));
        if (weights.Count != members.Count) throw new ArgumentException($"{weights.Count} weights for {members.Count} members.", nameof(weights));
        if (weights.Any(w => w < 0 || double.IsNaN(w)) || weights.Sum() <= 0) throw new ArgumentException("Weights must be non-negative and not all zero.", nameof(weights));
        if (task is not (DeepTask.BinaryClassification or DeepTask.MulticlassClassification or DeepTask.Regression))
            throw new ArgumentException($"Task {task}: give the ensemble's task (binary, multiclass or regression).", nameof(task));
        _members = members.ToArray();
        double sum = weights.Sum();
        _weights = weights.Select(w => w / sum).ToArray();
        Task = task;
        InputSchema = inputSchema;
        string needed = ScoreColumn;
        for (int i = 0; i < _members.Length; i++)
        {
            var output = _members[i].GetOutputSchema(inputSchema);
            var column = output.GetColumnOrNull(needed);
            if (column is null || (task == DeepTask.MulticlassClassification) != column.Value.Type is VectorDataViewType)
                throw new ArgumentException($"Ensemble member {i + 1} ({_members[i].GetType().Name}) has no {(task == DeepTask.MulticlassClassification ? "vector" : "scalar")} '{needed}' column for {task}.", nameof(members));
        }
    }

    /// <summary>The members, in order.</summary>
    public IReadOnlyList<ITransformer> Members => _members;

    /// <summary>Each member's weight (summing to 1).</summary>
    public IReadOnlyList<double> Weights => _weights;

    /// <summary>The task the members solve.</summary>
    public DeepTask Task { get; }

    /// <summary>The schema the members read.</summary>
    public DataViewSchema InputSchema { get; }

    /// <summary>The member column that is averaged: Probability (binary) or Score.</summary>
    private string ScoreColumn => Task == DeepTask.BinaryClassification ? "Probability" : "Score";

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => _members[0].GetOutputSchema(inputSchema);

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new Mapper(this, inputSchema);

    /// <inheritdoc />
    public IDataView Transform(IDataView input) => new MappedView(input, new Mapper(this, input.Schema));

    void ICanSaveModel.Save(ModelSaveContext ctx) => MlNetBridge.Save(ctx, ModelSignature, ModelVersion, LoaderSignature, Write);

    private void Write(BinaryWriter writer)
    {
        writer.Write((int)Task);
        writer.Write(_members.Length);
        var ml = new MLContext();
        for (int i = 0; i < _members.Length; i++)
        {
            writer.Write(_weights[i]);
            using var stream = new MemoryStream();
            ml.Model.Save(_members[i], InputSchema, stream);
            writer.Write(stream.Length);
            writer.Write(stream.GetBuffer(), 0, (int)stream.Length);
        }
    }

    /// <summary>ML.NET's loader entry point (registered by <see cref="DeepCatalog"/>).</summary>
    internal static WeightedEnsembleTransformer Create(IHostEnvironment env, object modelLoadContext)
    {
        var reader = MlNetBridge.OpenForLoad(modelLoadContext, ModelSignature, ModelVersion, LoaderSignature);
        var task = (DeepTask)reader.ReadInt32();
        int count = reader.ReadInt32();
        if (count < 1 || count > 10_000) throw new FormatException($"Ensemble entry: {count} members is not a valid count.");
        var ml = new MLContext();
        ml.Deep();
        var members = new List<ITransformer>();
        var weights = new List<double>();
        DataViewSchema? schema = null;
        for (int i = 0; i < count; i++)
        {
            weights.Add(reader.ReadDouble());
            long length = reader.ReadInt64();
            var bytes = reader.ReadBytes(checked((int)length));
            if (bytes.Length != length) throw new FormatException($"Ensemble entry: member {i + 1} is truncated ({bytes.Length} of {length} bytes).");
            members.Add(ml.Model.Load(new MemoryStream(bytes), out var memberSchema));
            schema ??= memberSchema;
        }
        return new WeightedEnsembleTransformer(members, weights, task, schema!);
    }

    internal static MethodInfo CreateMethod { get; } =
        typeof(WeightedEnsembleTransformer).GetMethod(nameof(Create), BindingFlags.NonPublic | BindingFlags.Static)!;

    /// <summary>Disposes the members that hold native memory (deep models).</summary>
    public void Dispose()
    {
        foreach (var m in _members) (m as IDisposable)?.Dispose();
    }

    /// <summary>Maps one input row: every member's row, then the averaged columns; the rest from the first member.</summary>
    private sealed class Mapper : IRowToRowMapper
    {
        private readonly WeightedEnsembleTransformer _e;
        private readonly IRowToRowMapper[] _members;

        public Mapper(WeightedEnsembleTransformer e, DataViewSchema input)
        {
            _e = e;
            _members = e._members.Select(m => m.GetRowToRowMapper(input)).ToArray();
            InputSchema = input;
            OutputSchema = _members[0].OutputSchema;
        }

        public DataViewSchema InputSchema { get; }

        public DataViewSchema OutputSchema { get; }

        private bool Averaged(DataViewSchema.Column c) =>
            c.Index == OutputSchema[c.Name].Index && c.Name is "Score" or "Probability" or "PredictedLabel";

        public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
        {
            var wanted = dependingColumns.ToList();
            var needed = _members[0].GetDependencies(wanted.Where(c => !Averaged(c)).ToList());
            if (wanted.Any(Averaged))
                needed = needed.Concat(_members.SelectMany(m => m.GetDependencies([m.OutputSchema[_e.ScoreColumn]])));
            return needed.DistinctBy(c => c.Index).ToList();
        }

        public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
        {
            var active = activeColumns.ToList();
            bool averaged = active.Any(Averaged);
            var rows = _members.Select((m, i) => m.GetRow(input,
                (i == 0 ? active.Where(c => !Averaged(c)) : []).Concat(averaged ? [m.OutputSchema[_e.ScoreColumn]] : []).DistinctBy(c => c.Index).ToList())).ToArray();
            return new Row(this, input, rows, active);
        }

        private sealed class Row : DataViewRow
        {
            private readonly Mapper _m;
            private readonly DataViewRow _input;
            private readonly DataViewRow[] _rows;
            private readonly HashSet<int> _active;
            private readonly Delegate[] _scores;
            private long _computed = -1;
            private VBuffer<float> _vector, _member;
            private float[] _sum = [];
            private float _scalar;

            public Row(Mapper m, DataViewRow input, DataViewRow[] rows, List<DataViewSchema.Column> active)
            {
                (_m, _input, _rows) = (m, input, rows);
                _active = active.Select(c => c.Index).ToHashSet();
                bool averaged = active.Any(m.Averaged);
                _scores = !averaged ? [] : rows.Select((r, i) => m._e.Task == DeepTask.MulticlassClassification
                    ? (Delegate)r.GetGetter<VBuffer<float>>(m._members[i].OutputSchema[m._e.ScoreColumn])
                    : r.GetGetter<float>(m._members[i].OutputSchema[m._e.ScoreColumn])).ToArray();
            }

            public override DataViewSchema Schema => _m.OutputSchema;

            public override long Position => _input.Position;

            public override long Batch => _input.Batch;

            public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

            public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                if (!_m.Averaged(column)) return _rows[0].GetGetter<TValue>(column);
                Delegate getter = (column.Name, _m._e.Task) switch
                {
                    ("Score", DeepTask.MulticlassClassification) => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> v) => { Compute(); _vector.CopyTo(ref v); }),
                    ("PredictedLabel", DeepTask.MulticlassClassification) => (ValueGetter<uint>)((ref uint k) => { Compute(); k = ArgMax(_vector) + 1; }),
                    ("Probability", DeepTask.BinaryClassification) => (ValueGetter<float>)((ref float p) => { Compute(); p = _scalar; }),
                    ("Score", DeepTask.BinaryClassification) => (ValueGetter<float>)((ref float s) => { Compute(); s = Logit(_scalar); }),
                    ("PredictedLabel", DeepTask.BinaryClassification) => (ValueGetter<bool>)((ref bool b) => { Compute(); b = _scalar > 0.5f; }),
                    ("Score", _) => (ValueGetter<float>)((ref float s) => { Compute(); s = _scalar; }),
                    _ => throw new InvalidOperationException($"Column '{column.Name}' is not an output of a {_m._e.Task} ensemble."),
                };
                return getter as ValueGetter<TValue> ?? throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}, not {typeof(TValue).Name}.");
            }

            private void Compute()
            {
                if (_computed == _input.Position) return;
                _computed = _input.Position;
                var w = _m._e._weights;
                if (_m._e.Task == DeepTask.MulticlassClassification)
                {
                    // One buffer per row cursor, reused row after row (the getter hands out a copy).
                    float[]? sum = null;
                    for (int i = 0; i < _scores.Length; i++)
                    {
                        ((ValueGetter<VBuffer<float>>)_scores[i])(ref _member);
                        if (sum is null)
                        {
                            if (_sum.Length != _member.Length) _sum = new float[_member.Length];
                            Array.Clear(_sum);
                            sum = _sum;
                        }
                        if (_member.Length != sum.Length) throw new InvalidOperationException($"Ensemble member {i + 1} scores {_member.Length} classes, member 1 {sum.Length}.");
                        foreach (var (slot, value) in _member.Items()) sum[slot] += (float)(w[i] * value);
                    }
                    _vector = new VBuffer<float>(sum!.Length, sum);
                }
                else
                {
                    double s = 0;
                    float x = 0;
                    for (int i = 0; i < _scores.Length; i++)
                    {
                        ((ValueGetter<float>)_scores[i])(ref x);
                        s += w[i] * x;
                    }
                    _scalar = (float)s;
                }
            }

            private static uint ArgMax(VBuffer<float> v)
            {
                var values = v.GetValues();
                int best = 0;
                for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
                return (uint)best;
            }

            private static float Logit(float p)
            {
                double q = Math.Clamp(p, 1e-7, 1 - 1e-7);
                return (float)Math.Log(q / (1 - q));
            }

            protected override void Dispose(bool disposing)
            {
                if (disposing) foreach (var r in _rows) r.Dispose();
                base.Dispose(disposing);
            }
        }
    }

    /// <summary>The mapper applied to every row of a data view, in order.</summary>
    private sealed class MappedView(IDataView input, Mapper mapper) : IDataView
    {
        public DataViewSchema Schema => mapper.OutputSchema;

        public bool CanShuffle => false;

        public long? GetRowCount() => input.GetRowCount();

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            var active = columnsNeeded.ToList();
            var cursor = input.GetRowCursor(mapper.GetDependencies(active));
            return new Cursor(cursor, mapper.GetRow(cursor, active));
        }

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
            [GetRowCursor(columnsNeeded, rand)];

        private sealed class Cursor(DataViewRowCursor input, DataViewRow row) : DataViewRowCursor
        {
            public override DataViewSchema Schema => row.Schema;
            public override long Position => input.Position;
            public override long Batch => input.Batch;
            public override bool MoveNext() => input.MoveNext();
            public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();
            public override bool IsColumnActive(DataViewSchema.Column column) => row.IsColumnActive(column);
            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => row.GetGetter<TValue>(column);

            protected override void Dispose(bool disposing)
            {
                if (disposing)
                {
                    row.Dispose();
                    input.Dispose();
                }
                base.Dispose(disposing);
            }
        }
    }
}
