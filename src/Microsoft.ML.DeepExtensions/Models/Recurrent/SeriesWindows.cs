using Microsoft.ML.Data;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Turns an ordered series column into windowed rows, so forecasting is an ordinary ML.NET pipeline: each row holds the
/// previous <c>lookBack</c> values (features), the next <c>horizon</c> values (label) and the persistence forecast
/// (the last observed value repeated over the horizon) as a baseline to compare against.
/// </summary>
public static class SeriesWindows
{
    /// <summary>
    /// Windows over <paramref name="seriesColumnName"/> (Single or Double, in row order). Row i covers values
    /// [s, s + lookBack) as <paramref name="featureColumnName"/> and [s + lookBack, s + lookBack + horizon) as
    /// <paramref name="labelColumnName"/>, with s = i × <paramref name="stride"/>. The label is a Single when the horizon
    /// is 1, else a vector of <paramref name="horizon"/>; <paramref name="lastValueColumnName"/> has the same type and holds
    /// the persistence forecast, so <c>mlContext.Regression.Evaluate(windows, "Label", "LastValue")</c> scores the baseline.
    /// Windows are in series order: split train/test with <c>TakeRows</c>/<c>SkipRows</c>, not at random.
    /// </summary>
    public static IDataView Create(MLContext context, IDataView data, string seriesColumnName, int lookBack, int horizon = 1, int stride = 1,
        string featureColumnName = ColumnNames.Features, string labelColumnName = ColumnNames.Label, string lastValueColumnName = "LastValue")
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(data);
        if (lookBack < 1) throw new ArgumentOutOfRangeException(nameof(lookBack), lookBack, "The look-back must be at least 1 value.");
        if (horizon < 1) throw new ArgumentOutOfRangeException(nameof(horizon), horizon, "The horizon must be at least 1 value.");
        if (stride < 1) throw new ArgumentOutOfRangeException(nameof(stride), stride, "The stride must be at least 1 row.");
        var series = Read(data, seriesColumnName);
        int count = series.Length < lookBack + horizon ? 0 : (series.Length - lookBack - horizon) / stride + 1;
        if (count == 0)
            throw new ArgumentException(
                $"Series column '{seriesColumnName}' has {series.Length} values; a window of {lookBack} + {horizon} needs at least {lookBack + horizon}.", seriesColumnName);

        var windows = Enumerable.Range(0, count).Select(i =>
        {
            int s = i * stride;
            var target = series.AsSpan(s + lookBack, horizon).ToArray();
            var last = Enumerable.Repeat(series[s + lookBack - 1], horizon).ToArray();
            return new Window { Features = series.AsSpan(s, lookBack).ToArray(), Label = target, LastValue = last };
        });
        if (horizon == 1)
        {
            var def = SchemaDefinition.Create(typeof(ScalarWindow));
            Name(def, featureColumnName, labelColumnName, lastValueColumnName, lookBack, null);
            return context.Data.LoadFromEnumerable(windows.Select(w => new ScalarWindow { Features = w.Features, Label = w.Label[0], LastValue = w.LastValue[0] }).ToList(), def);
        }
        var vdef = SchemaDefinition.Create(typeof(Window));
        Name(vdef, featureColumnName, labelColumnName, lastValueColumnName, lookBack, horizon);
        return context.Data.LoadFromEnumerable(windows.ToList(), vdef);
    }

    private static void Name(SchemaDefinition def, string features, string label, string last, int lookBack, int? horizon)
    {
        def[nameof(Window.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, lookBack);
        def[nameof(Window.Features)].ColumnName = features;
        def[nameof(Window.Label)].ColumnName = label;
        def[nameof(Window.LastValue)].ColumnName = last;
        if (horizon is int h)
        {
            def[nameof(Window.Label)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, h);
            def[nameof(Window.LastValue)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, h);
        }
    }

    /// <summary>Reads a Single or Double column in row order, rejecting missing and infinite values.</summary>
    private static float[] Read(IDataView data, string name)
    {
        var col = data.Schema.GetColumnOrNull(name) ?? throw new ArgumentException(
            $"Series column '{name}' was not found in the data. Available columns: {string.Join(", ", data.Schema.Where(c => !c.IsHidden).Select(c => $"'{c.Name}'"))}.", name);
        Func<DataViewRow, Func<float>> getter = col.Type == NumberDataViewType.Single
            ? row => { var g = row.GetGetter<float>(col); float v = 0; return () => { g(ref v); return v; }; }
            : col.Type == NumberDataViewType.Double
            ? row => { var g = row.GetGetter<double>(col); double v = 0; return () => { g(ref v); return (float)v; }; }
            : throw new ArgumentException($"Series column '{name}' must be Single or Double; found {col.Type}.", name);
        var values = new List<float>();
        using var cursor = data.GetRowCursor([col]);
        var read = getter(cursor);
        long r = 0;
        while (cursor.MoveNext())
        {
            float v = read();
            if (!float.IsFinite(v))
                throw new InvalidOperationException($"Series column '{name}' has a missing or infinite value in row {r}; fill gaps before windowing.");
            values.Add(v);
            r++;
        }
        return values.ToArray();
    }

    private sealed class Window
    {
        public float[] Features { get; set; } = [];
        public float[] Label { get; set; } = [];
        public float[] LastValue { get; set; } = [];
    }

    private sealed class ScalarWindow
    {
        public float[] Features { get; set; } = [];
        public float Label { get; set; }
        public float LastValue { get; set; }
    }
}
