using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;

namespace Microsoft.ML.DeepExtensions;

/// <summary>What the batched scoring views need from a fitted model: the column it reads and one forward pass per batch.</summary>
internal interface IBatchScorer
{
    /// <summary>The feature column the model reads.</summary>
    string FeatureColumnName { get; }

    /// <summary>How the feature column is read.</summary>
    FeatureInput Input { get; }

    /// <summary>Scores <paramref name="rows"/> rows of flattened features; <see cref="OutputColumns.Width"/> values per row.</summary>
    float[] ScoreBatch(float[] features, int rows);
}

/// <summary>
/// The lazy result of <see cref="DeepTransformer.Transform"/> (and of other models' Transform, through <see cref="IBatchScorer"/>). Its cursor scores in batches: a second cursor over the
/// input, with only the feature column active, reads ahead one batch of rows, which is scored in one forward pass;
/// the main cursor passes the input columns through row by row. Both cursors are unshuffled, so rows align.
/// </summary>
internal sealed class ScoredDataView(IBatchScorer model, IDataView input, OutputColumns outputs) : IDataView
{
    internal const int BatchRows = 512;

    public bool CanShuffle => false;

    public DataViewSchema Schema => outputs.Schema;

    public long? GetRowCount() => input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).ToHashSet();
        var inputCols = needed.Where(i => !outputs.IsOutput(i)).Select(i => input.Schema[i]);
        bool scoring = needed.Any(outputs.IsOutput);
        return new Cursor(model, input.GetRowCursor(inputCols), scoring ? input : null, outputs, needed);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly IBatchScorer _model;
        private readonly DataViewRowCursor _input;
        private readonly DataViewRowCursor? _ahead;
        private readonly FeatureReader? _reader;
        private readonly OutputColumns _outputs;
        private readonly HashSet<int> _active;
        private readonly float[] _features;
        private float[] _scores = [];
        private int _count;
        private int _row = -1;
        private long _aheadRow = -1;

        public Cursor(IBatchScorer model, DataViewRowCursor input, IDataView? scoringSource, OutputColumns outputs, HashSet<int> active)
        {
            _model = model;
            _input = input;
            _outputs = outputs;
            _active = active;
            _features = scoringSource is null ? [] : new float[BatchRows * outputs.FeatureSize];
            if (scoringSource is not null)
            {
                _ahead = scoringSource.GetRowCursor([scoringSource.Schema[model.FeatureColumnName]]);
                _reader = new FeatureReader(_ahead, model.FeatureColumnName, model.Input);
            }
        }

        public override DataViewSchema Schema => _outputs.Schema;
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool MoveNext()
        {
            if (!_input.MoveNext()) return false;
            if (_ahead is null) return true;
            if (++_row >= _count) Fill();
            return true;
        }

        private void Fill()
        {
            int d = _outputs.FeatureSize, n = 0;
            while (n < BatchRows && _ahead!.MoveNext())
                _reader!.ReadFeatures(_features.AsSpan(n++ * d, d), ++_aheadRow);
            if (n == 0) throw new InvalidOperationException("The input data returned fewer rows for the feature column than for the other columns.");
            _scores = _model.ScoreBatch(_features, n);
            _count = n;
            _row = 0;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_outputs.IsOutput(column.Index)) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            if (_ahead is null || !_active.Contains(column.Index))
                throw new InvalidOperationException($"Column '{column.Name}' is not active in this cursor.");
            return _outputs.Getter(column.Index, () => _scores, () => _row) as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}, not {typeof(TValue).Name}.");
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _input.Dispose();
                _ahead?.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}

/// <summary>Row-to-row scoring for <see cref="PredictionEngine{TSrc,TDst}"/>: one forward pass per input row, on demand.</summary>
internal sealed class ScoringRowMapper(IBatchScorer model, OutputColumns outputs) : IRowToRowMapper
{
    public DataViewSchema InputSchema => outputs.Input;
    public DataViewSchema OutputSchema => outputs.Schema;

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var cols = dependingColumns.ToList();
        var deps = cols.Where(c => !outputs.IsOutput(c.Index)).Select(c => InputSchema[c.Index]).ToList();
        if (cols.Any(c => outputs.IsOutput(c.Index))) deps.Add(InputSchema[model.FeatureColumnName]);
        return deps.DistinctBy(c => c.Index);
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(model, input, outputs, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class Row : DataViewRow
    {
        private readonly IBatchScorer _model;
        private readonly DataViewRow _input;
        private readonly OutputColumns _outputs;
        private readonly HashSet<int> _active;
        private readonly float[] _features;
        private FeatureReader? _reader;
        private float[] _scores = [];
        private long _scoredPosition = -1;

        public Row(IBatchScorer model, DataViewRow input, OutputColumns outputs, HashSet<int> active)
        {
            _model = model; _input = input; _outputs = outputs; _active = active;
            _features = new float[outputs.FeatureSize];
        }

        public override DataViewSchema Schema => _outputs.Schema;
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        private float[] Scores()
        {
            if (_scoredPosition == _input.Position && _input.Position >= 0) return _scores;
            _reader ??= new FeatureReader(_input, _model.FeatureColumnName, _model.Input);
            _reader.ReadFeatures(_features, _input.Position);
            _scores = _model.ScoreBatch(_features, 1);
            _scoredPosition = _input.Position;
            return _scores;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_outputs.IsOutput(column.Index)) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            return _outputs.Getter(column.Index, Scores, () => 0) as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}, not {typeof(TValue).Name}.");
        }
    }
}
