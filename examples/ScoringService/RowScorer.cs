using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.ObjectPool;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace ScoringService;

/// <summary>What the service scores requests with: a saved ML.NET model (<see cref="RowScorer"/>) or an ONNX file (<see cref="OnnxScorer"/>).</summary>
public interface IRowScorer
{
    /// <summary>The input columns a request must carry, as JSON fields of the same names.</summary>
    IReadOnlyList<DataViewSchema.Column> Required { get; }

    /// <summary>The outputs each prediction holds.</summary>
    IReadOnlyList<string> OutputNames { get; }

    /// <summary>Describes the fields a request needs, for /health.</summary>
    IEnumerable<object> Fields { get; }

    /// <summary>Checks every row (a bad one rejects the request with <see cref="BadRequestException"/>), then scores them.</summary>
    List<Dictionary<string, object?>> Predict(IReadOnlyList<JsonElement> rows);
}

/// <summary>A request the service refuses, with the field (input column) and row it is about: answered with 400.</summary>
public sealed class BadRequestException(string message) : Exception(message);

/// <summary>
/// Scores JSON rows with a loaded model whatever its input schema: the fields a request must carry are the input columns
/// the model's outputs depend on (asked of ML.NET's row mapper), each checked against its column type before anything
/// is scored. Scoring goes through a pool of row engines — the same mechanism as ML.NET's <c>PredictionEngine</c> (a
/// row-to-row mapper over one reusable input row), which is not thread-safe, so each request borrows one.
/// </summary>
public sealed class RowScorer : IRowScorer
{
    /// <summary>The output columns returned, when the model has them (ML.NET's names for predictions).</summary>
    private static readonly string[] PredictionColumns = ["PredictedLabel", "Score", "Probability"];

    private readonly ITransformer _model;
    private readonly DataViewSchema _input;
    private readonly DefaultObjectPool<RowEngine> _pool;

    /// <summary>Prepares scoring of <paramref name="model"/> for rows of <paramref name="inputSchema"/>; throws naming a column the service cannot read from JSON.</summary>
    public RowScorer(ITransformer model, DataViewSchema inputSchema, int poolSize)
    {
        _model = model;
        _input = inputSchema;
        var mapper = model.GetRowToRowMapper(inputSchema);
        Outputs = PredictionColumns.Select(n => mapper.OutputSchema.GetColumnOrNull(n)).OfType<DataViewSchema.Column>().ToArray();
        if (Outputs.Count == 0)
            throw new InvalidOperationException($"The model has none of the output columns {string.Join(", ", PredictionColumns)}; is it a trained predictor?");
        Required = mapper.GetDependencies(Outputs).ToArray();
        foreach (var c in Required) Kind(c);   // fail at load, naming the column, not at the first request
        _pool = new DefaultObjectPool<RowEngine>(new EnginePolicy(this), poolSize);
    }

    /// <summary>The input columns a request must carry, as JSON fields of the same names.</summary>
    public IReadOnlyList<DataViewSchema.Column> Required { get; }

    /// <summary>The output columns each prediction holds.</summary>
    public IReadOnlyList<DataViewSchema.Column> Outputs { get; }

    /// <inheritdoc />
    public IReadOnlyList<string> OutputNames => Outputs.Select(c => c.Name).ToArray();

    /// <summary>Describes the fields a request needs, for /health.</summary>
    public IEnumerable<object> Fields => Required.Select(c => new { name = c.Name, type = c.Type.ToString() });

    /// <summary>
    /// Reads and checks every row first (a bad one rejects the request, naming row and field), then scores them: one row
    /// with a pooled engine, several as one batch through <c>Transform</c> (a deep model then runs one forward pass).
    /// </summary>
    public List<Dictionary<string, object?>> Predict(IReadOnlyList<JsonElement> rows)
    {
        var values = rows.Select((r, i) => Parse(r, i, rows.Count, Required)).ToList();
        if (values.Count > 1) return PredictBatch(values);
        var engine = _pool.Get();
        try
        {
            return [engine.Predict(values[0])];
        }
        finally
        {
            _pool.Return(engine);
        }
    }

    private List<Dictionary<string, object?>> PredictBatch(List<object[]> values)
    {
        var scored = _model.Transform(new RowsView(_input, Required, values));
        using var cursor = scored.GetRowCursor(Outputs.Select(c => scored.Schema[c.Name]));
        var read = Outputs.Select(c => Reader(cursor, cursor.Schema[c.Name])).ToArray();
        var names = OutputKeys;
        var result = new List<Dictionary<string, object?>>(values.Count);
        while (cursor.MoveNext())
        {
            var row = new Dictionary<string, object?>(names.Length);
            for (int i = 0; i < names.Length; i++) row[names[i]] = read[i]();
            result.Add(row);
        }
        return result;
    }

    private string[] OutputKeys => field ??= Outputs.Select(c => JsonNamingPolicy.CamelCase.ConvertName(c.Name)).ToArray();

    /// <summary>Reads one JSON row into the values of <paramref name="required"/> (in order); throws a 400 naming the row and field.</summary>
    internal static object[] Parse(JsonElement row, int index, int count, IReadOnlyList<DataViewSchema.Column> required)
    {
        string where = count > 1 ? $"row {index}: " : "";
        if (row.ValueKind != JsonValueKind.Object)
            throw new BadRequestException($"{where}a row must be a JSON object with the fields {string.Join(", ", required.Select(c => $"'{c.Name}'"))}; got {row.ValueKind}.");
        var values = new object[required.Count];
        for (int k = 0; k < required.Count; k++)
        {
            var c = required[k];
            if (!row.TryGetProperty(c.Name, out var v) || v.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
                throw new BadRequestException($"{where}field '{c.Name}' is missing; expected {Describe(c)}.");
            values[k] = Read(v, c, where);
        }
        return values;
    }

    private static object Read(JsonElement v, DataViewSchema.Column c, string where)
    {
        BadRequestException Wrong(string got) => new($"{where}field '{c.Name}' must be {Describe(c)}; got {got}.");
        switch (Kind(c))
        {
            case ValueKind.Single:
                return v.ValueKind == JsonValueKind.Number && v.TryGetSingle(out var f) ? f : throw Wrong(v.ValueKind.ToString());
            case ValueKind.Double:
                return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Wrong(v.ValueKind.ToString());
            case ValueKind.Boolean:
                return v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw Wrong(v.ValueKind.ToString());
            case ValueKind.Text:
                return v.ValueKind == JsonValueKind.String ? v.GetString()!.AsMemory()
                    : v.ValueKind == JsonValueKind.Number ? v.GetRawText().AsMemory() : throw Wrong(v.ValueKind.ToString());
            default:
                int size = ((VectorDataViewType)c.Type).Size;
                if (v.ValueKind != JsonValueKind.Array) throw Wrong(v.ValueKind.ToString());
                int n = v.GetArrayLength();
                if (n != size) throw Wrong($"an array of {n}");
                var a = new float[size];
                int i = 0;
                foreach (var e in v.EnumerateArray())
                {
                    if (e.ValueKind != JsonValueKind.Number || !e.TryGetSingle(out a[i]))
                        throw new BadRequestException($"{where}field '{c.Name}'[{i}] must be a number; got {e.ValueKind}.");
                    i++;
                }
                return new VBuffer<float>(size, a);
        }
    }

    internal enum ValueKind { Single, Double, Boolean, Text, SingleVector }

    internal static ValueKind Kind(DataViewSchema.Column c) => c.Type switch
    {
        _ when c.Type == NumberDataViewType.Single => ValueKind.Single,
        _ when c.Type == NumberDataViewType.Double => ValueKind.Double,
        BooleanDataViewType => ValueKind.Boolean,
        TextDataViewType => ValueKind.Text,
        VectorDataViewType { Size: > 0 } v when v.ItemType == NumberDataViewType.Single => ValueKind.SingleVector,
        _ => throw new NotSupportedException($"Input column '{c.Name}' is {c.Type}; the service reads Single, Double, Boolean, Text and known-size Single vectors from JSON."),
    };

    private static string Describe(DataViewSchema.Column c) => Kind(c) switch
    {
        ValueKind.Single or ValueKind.Double => "a number",
        ValueKind.Boolean => "true or false",
        ValueKind.Text => "a string",
        _ => $"an array of {((VectorDataViewType)c.Type).Size} numbers",
    };

    private sealed class EnginePolicy(RowScorer scorer) : PooledObjectPolicy<RowEngine>
    {
        public override RowEngine Create() => new(scorer);
        public override bool Return(RowEngine engine) => true;
    }

    /// <summary>One reusable input row, the model's mapper over it and the output getters: what a PredictionEngine holds.</summary>
    private sealed class RowEngine
    {
        private readonly ValuesCursor _row;
        private readonly Func<object?>[] _read;
        private readonly string[] _names;

        public RowEngine(RowScorer s)
        {
            _row = new ValuesCursor(s._input, s.Required, null);
            var mapper = s._model.GetRowToRowMapper(s._input);
            var output = mapper.GetRow(_row, s.Outputs.Select(c => mapper.OutputSchema[c.Name]));
            _names = s.OutputKeys;
            _read = s.Outputs.Select(c => Reader(output, output.Schema[c.Name])).ToArray();
        }

        public Dictionary<string, object?> Predict(object[] values)
        {
            _row.Set(values);
            var result = new Dictionary<string, object?>(_names.Length);
            for (int i = 0; i < _names.Length; i++) result[_names[i]] = _read[i]();
            return result;
        }
    }

    // Output values as JSON-friendly objects: numbers (NaN → null), arrays, and a key as its label value.
    private static Func<object?> Reader(DataViewRow row, DataViewSchema.Column c)
    {
        static object? Number(float f) => float.IsFinite(f) ? f : null;
        switch (c.Type)
        {
            case NumberDataViewType when c.Type == NumberDataViewType.Single:
                var fg = row.GetGetter<float>(c);
                return () => { float f = 0; fg(ref f); return Number(f); };
            case BooleanDataViewType:
                var bg = row.GetGetter<bool>(c);
                return () => { bool b = false; bg(ref b); return b; };
            case KeyDataViewType:
                var kg = row.GetGetter<uint>(c);
                var labels = KeyLabels(c);
                return () => { uint k = 0; kg(ref k); return k == 0 ? null : labels is not null && k <= labels.Length ? labels[k - 1] : k - 1; };
            case VectorDataViewType v when v.ItemType == NumberDataViewType.Single:
                var vg = row.GetGetter<VBuffer<float>>(c);
                return () => { VBuffer<float> b = default; vg(ref b); return b.DenseValues().Select(Number).ToArray(); };
            default:
                var tg = row.GetGetter<ReadOnlyMemory<char>>(c);
                return () => { ReadOnlyMemory<char> t = default; tg(ref t); return t.ToString(); };
        }
    }

    private static object[]? KeyLabels(DataViewSchema.Column c)
    {
        var kv = c.Annotations.Schema.GetColumnOrNull("KeyValues");
        if (kv?.Type is not VectorDataViewType { ItemType: var item }) return null;
        if (item is TextDataViewType)
        {
            VBuffer<ReadOnlyMemory<char>> t = default;
            c.Annotations.GetValue("KeyValues", ref t);
            return t.DenseValues().Select(x => (object)x.ToString()).ToArray();
        }
        if (item == NumberDataViewType.Single)
        {
            VBuffer<float> f = default;
            c.Annotations.GetValue("KeyValues", ref f);
            return f.DenseValues().Select(x => (object)x).ToArray();
        }
        return null;
    }

    /// <summary>A batch of parsed rows as an IDataView over the model's input schema (for <c>Transform</c>).</summary>
    private sealed class RowsView(DataViewSchema schema, IReadOnlyList<DataViewSchema.Column> required, List<object[]> rows) : IDataView
    {
        public DataViewSchema Schema => schema;
        public bool CanShuffle => false;
        public long? GetRowCount() => rows.Count;
        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new ValuesCursor(schema, required, rows);
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => [GetRowCursor(columnsNeeded, rand)];
    }

    /// <summary>
    /// Rows of the model's input schema holding values for the required columns: either the batch it was given (MoveNext)
    /// or, for an engine, one reusable row that <see cref="Set"/> moves to the next position.
    /// </summary>
    private sealed class ValuesCursor : DataViewRowCursor
    {
        private readonly int[] _slot;   // input column index → index into a row's values, or -1
        private readonly List<object[]>? _rows;
        private object[] _values = [];
        private long _position = -1;

        public ValuesCursor(DataViewSchema schema, IReadOnlyList<DataViewSchema.Column> required, List<object[]>? rows)
        {
            Schema = schema;
            _rows = rows;
            _slot = Enumerable.Repeat(-1, schema.Count).ToArray();
            for (int k = 0; k < required.Count; k++) _slot[required[k].Index] = k;
        }

        public override DataViewSchema Schema { get; }
        public override long Position => _position;
        public override long Batch => 0;

        public void Set(object[] values) => (_values, _position) = (values, _position + 1);

        public override bool MoveNext()
        {
            if (_rows is null || _position + 1 >= _rows.Count) return false;
            Set(_rows[(int)_position + 1]);
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override bool IsColumnActive(DataViewSchema.Column column) => _slot[column.Index] >= 0;

        public override ValueGetter<T> GetGetter<T>(DataViewSchema.Column column)
        {
            int k = _slot[column.Index];
            if (k < 0) throw new InvalidOperationException($"Column '{column.Name}' is not one the model's outputs depend on.");
            return (ref T value) =>
            {
                if (_values[k] is VBuffer<float> src && value is VBuffer<float> dst)
                {
                    src.CopyTo(ref dst);
                    value = (T)(object)dst;
                }
                else value = (T)_values[k];
            };
        }
    }
}
