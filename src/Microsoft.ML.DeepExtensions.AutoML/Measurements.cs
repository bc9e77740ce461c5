using System.Diagnostics;
using Microsoft.ML.Data;
using TorchSharp;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>Latency, throughput and size of a fitted candidate, measured the same way for deep and classic ones.</summary>
internal static class Measurements
{
    /// <summary>
    /// Latency, throughput and size into <paramref name="entry"/>. A scoring pass over <paramref name="valid"/> already
    /// made (the evaluation's) stands for the throughput when it took a second or more — its evaluator costs are then
    /// a percent or less — so a slow model is not scored twice; a quick one gets a pass of its own. Without a pass and
    /// with <paramref name="measureThroughput"/> false, the throughput is left to the caller. The size is that of the
    /// model saved at <paramref name="modelPath"/> (kept), or in a temporary file.
    /// </summary>
    public static void Measure(MLContext ml, ITransformer model, DataViewSchema trainSchema, IDataView valid, CandidateContext c, int samples, LeaderboardEntry entry,
        (long Rows, double Seconds)? pass = null, bool measureThroughput = true, string? modelPath = null)
    {
        // Deep models score with the thread count they trained with (as classic trainers do with NumberOfThreads).
        bool torchThreads = c.NumberOfThreads is not null && DeepComparison.FindDeep(model) is not null;
        int before = torchThreads ? torch.get_num_threads() : 0;
        if (torchThreads) torch.set_num_threads(c.NumberOfThreads!.Value);
        try
        {
            MeasureCore(ml, model, trainSchema, valid, c, samples, entry);
            if (pass is { Seconds: >= 1 } p) entry.ThroughputRowsPerSecond = p.Rows / p.Seconds;
            else if (measureThroughput) Throughput(model, valid, entry);
            Size(ml, model, trainSchema, entry, modelPath);
        }
        finally
        {
            if (torchThreads) torch.set_num_threads(before);
        }
    }

    private static void MeasureCore(MLContext ml, ITransformer model, DataViewSchema trainSchema, IDataView valid, CandidateContext c, int samples, LeaderboardEntry entry)
    {
        // Single rows through a PredictionEngine: the feature vector (or token keys) — and the raw text, when the data has
        // it (pretrained text candidates read that) — in, the Score out.
        if (c.VocabularySize > 0)
        {
            var tokens = Definition<TokenRow>(c, new VectorDataViewType(new KeyDataViewType(typeof(uint), c.VocabularySize)));
            var tokenRows = ml.Data.CreateEnumerable<TokenRow>(valid, reuseRowObject: false, ignoreMissingColumns: true, schemaDefinition: tokens).Take(samples).ToList();
            Latency(ml, model, c, tokenRows, tokens, entry);
        }
        else
        {
            var input = Definition<FeatureRow>(c, new VectorDataViewType(NumberDataViewType.Single, c.FeatureCount));
            var rows = ml.Data.CreateEnumerable<FeatureRow>(valid, reuseRowObject: false, ignoreMissingColumns: true, schemaDefinition: input).Take(samples).ToList();
            Latency(ml, model, c, rows, input, entry);
        }
    }

    /// <summary>The row's schema: the feature column of <paramref name="type"/>, and the text column when there is one.</summary>
    private static SchemaDefinition Definition<TRow>(CandidateContext c, DataViewType type)
    {
        var definition = SchemaDefinition.Create(typeof(TRow));
        var features = definition.Single(d => d.MemberName == "Features");
        features.ColumnName = c.FeatureColumnName;
        features.ColumnType = type;
        var text = definition.Single(d => d.MemberName == "Text");
        if (c.TextColumnName is null) definition.Remove(text);
        else text.ColumnName = c.TextColumnName;
        return definition;
    }

    private static void Latency<TRow>(MLContext ml, ITransformer model, CandidateContext c, List<TRow> rows, SchemaDefinition input, LeaderboardEntry entry)
        where TRow : class
    {
        // The engine is deliberately not disposed: ML.NET's PredictionEngine.Dispose disposes a disposable transformer
        // (a DeepTransformer's network), and the model is still needed — for throughput, size and as the best model.
        Func<TRow, object> predict;
        if (c.Task == DeepTask.MulticlassClassification)
        {
            var e = ml.Model.CreatePredictionEngine<TRow, VectorScore>(model, ignoreMissingColumns: true, inputSchemaDefinition: input);
            predict = r => e.Predict(r);
        }
        else
        {
            var e = ml.Model.CreatePredictionEngine<TRow, ScalarScore>(model, ignoreMissingColumns: true, inputSchemaDefinition: input);
            predict = r => e.Predict(r);
        }
        {
            foreach (var r in rows.Take(Math.Min(20, rows.Count))) predict(r);   // warm-up
            // Up to `samples` rows, but no more than 3 s of them (at least 20), so a slow model cannot eat the budget.
            var times = new List<double>(rows.Count);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            foreach (var r in rows)
            {
                if (times.Count >= 20 && clock.Elapsed.TotalSeconds > 3) break;
                long start = Stopwatch.GetTimestamp();
                predict(r);
                times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
            times.Sort();
            entry.LatencyP50Milliseconds = Percentile(times, 0.50);
            entry.LatencyP95Milliseconds = Percentile(times, 0.95);
        }

    }

    // Batch throughput: one Transform over the validation split, every Score computed.
    /// <summary>Scores every row of <paramref name="data"/> in one <c>Transform</c>: the rows and the seconds it took.</summary>
    public static (long Rows, double Seconds) Score(ITransformer model, IDataView data)
    {
        var watch = Stopwatch.StartNew();
        var scored = model.Transform(data);
        var score = scored.Schema["Score"];
        long n = 0;
        using (var cursor = scored.GetRowCursor([score]))
        {
            if (score.Type is VectorDataViewType)
            {
                var get = cursor.GetGetter<VBuffer<float>>(score);
                VBuffer<float> v = default;
                while (cursor.MoveNext()) { get(ref v); n++; }
            }
            else
            {
                var get = cursor.GetGetter<float>(score);
                float v = 0;
                while (cursor.MoveNext()) { get(ref v); n++; }
            }
        }
        return (n, watch.Elapsed.TotalSeconds);
    }

    private static void Throughput(ITransformer model, IDataView valid, LeaderboardEntry entry)
    {
        var (rows, seconds) = Score(model, valid);
        entry.ThroughputRowsPerSecond = rows / Math.Max(seconds, 1e-9);
    }

    // model.zip as mlContext.Model.Save writes it.
    private static void Size(MLContext ml, ITransformer model, DataViewSchema trainSchema, LeaderboardEntry entry, string? keepAt)
    {
        string path = keepAt ?? Path.Combine(Path.GetTempPath(), $"deepext-compare-{Environment.ProcessId}-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, trainSchema, path);
            entry.ModelBytes = new FileInfo(path).Length;
        }
        finally
        {
            if (keepAt is null) File.Delete(path);
        }
    }

    private static double Percentile(List<double> sorted, double q) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];

    internal sealed class FeatureRow
    {
        public float[] Features { get; set; } = [];
        public string Text { get; set; } = "";
    }

    internal sealed class TokenRow
    {
        public uint[] Features { get; set; } = [];
        public string Text { get; set; } = "";
    }

    internal sealed class ScalarScore
    {
        public float Score { get; set; }
    }

    internal sealed class VectorScore
    {
        public float[] Score { get; set; } = [];
    }
}

/// <summary>Samples the process working set every 20 ms and keeps the peak (managed and native memory).</summary>
internal sealed class PeakMemorySampler : IDisposable
{
    private readonly Timer _timer;
    private long _peak;

    public PeakMemorySampler()
    {
        _peak = Environment.WorkingSet;
        _timer = new Timer(_ => Sample(), null, 0, 20);
    }

    public long Peak { get { Sample(); return Interlocked.Read(ref _peak); } }

    private void Sample()
    {
        long now = Environment.WorkingSet;
        long seen;
        while (now > (seen = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, now, seen) != seen) { }
    }

    public void Dispose() => _timer.Dispose();
}
