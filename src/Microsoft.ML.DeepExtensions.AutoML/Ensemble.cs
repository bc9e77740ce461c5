using System.Diagnostics;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>
/// Greedy ensemble selection (Caruana, Niculescu-Mizil, Crew and Ksikes, 2004; what AutoGluon stacks on top of its
/// models): starting from nothing, add — with replacement — the finished candidate whose addition lowers the held-out
/// loss most (log-loss for classification, squared error for regression), a fixed number of times; a member's weight is
/// how often it was added. The weights are chosen on the validation split, so the metrics reported for the ensemble are
/// cross-fitted: weights chosen on one half of the rows score the other half, and the two halves are evaluated together
/// with ML.NET's evaluator, like every other row of the leaderboard. The model kept is weighted on all the rows.
/// </summary>
internal static class Ensemble
{
    /// <summary>The name of the ensemble's leaderboard row.</summary>
    public const string Name = "WeightedEnsemble";

    /// <summary>Additions in the greedy selection (AutoGluon's default is 25 for small model sets; weights are multiples of 1/25).</summary>
    public const int Iterations = 25;

    /// <summary>
    /// The ensemble of <paramref name="candidates"/> on <paramref name="valid"/> (featurized), or null when fewer than two
    /// candidates have the scores it averages. Fills the entry's metrics and returns the fitted transformer.
    /// </summary>
    public static (LeaderboardEntry Entry, WeightedEnsembleTransformer Model)? Build(MLContext ml, IReadOnlyList<LeaderboardEntry> candidates,
        IDataView valid, DataViewSchema inputSchema, DeepTask task, string label)
    {
        var watch = Stopwatch.StartNew();
        string column = ScoreColumn(task);
        var members = candidates.Where(e => e.Model is not null && e.Model.GetOutputSchema(inputSchema).GetColumnOrNull(column) is not null).ToList();
        if (members.Count < 2) return null;
        var truth = Labels(valid, label, task);
        var predictions = members.Select(e => e.ValidationScores ?? Scores(e.Model!.Transform(valid), task)!).ToList();
        int n = truth.Length, k = predictions[0][0].Length;
        if (predictions.Any(p => p.Length != n || p[0].Length != k)) return null;

        // Cross-fitted predictions: half A's weights score half B and the other way round.
        var rows = Enumerable.Range(0, n).ToArray();
        var (a, b) = (rows.Where(i => i % 2 == 0).ToArray(), rows.Where(i => i % 2 == 1).ToArray());
        var crossed = new float[n][];
        foreach (var (fit, score) in new[] { (a, b), (b, a) })
        {
            var w = Select(predictions, truth, fit, task);
            foreach (int i in score) crossed[i] = Combine(predictions, w, i);
        }
        var view = View(ml, truth, crossed, task, k);
        var metrics = Metrics.Evaluate(ml, view, task, "Label");

        var weights = Select(predictions, truth, rows, task);
        var kept = Enumerable.Range(0, members.Count).Where(i => weights[i] > 0).ToList();
        var model = new WeightedEnsembleTransformer(kept.Select(i => members[i].Model!).ToList(), kept.Select(i => weights[i]).ToList(), task, inputSchema);
        var parameters = new HyperParameters();
        foreach (int i in kept.OrderByDescending(i => weights[i])) parameters[members[i].Name] = Math.Round(weights[i], 2);
        var entry = new LeaderboardEntry
        {
            Name = Name, Kind = CandidateKind.Ensemble, Model = model, Metrics = metrics, Parameters = parameters,
            // What the ensemble cost: its members' training (and their searches and measurements), plus the selection.
            TrainSeconds = kept.Sum(i => members[i].TrainSeconds) + watch.Elapsed.TotalSeconds,
            TotalSeconds = kept.Sum(i => members[i].TotalSeconds) + watch.Elapsed.TotalSeconds,
            PeakMemoryBytes = kept.Max(i => members[i].PeakMemoryBytes),
            // Its members score one after another: their seconds per row add up (the averaging itself is negligible).
            ThroughputRowsPerSecond = 1 / kept.Sum(i => 1 / members[i].ThroughputRowsPerSecond),
            Device = string.Join("+", kept.Select(i => members[i].Device).Distinct()),
        };
        return (entry, model);
    }

    /// <summary>Caruana's greedy selection with replacement over <paramref name="rows"/>; returns weights summing to 1.</summary>
    internal static double[] Select(IReadOnlyList<float[][]> predictions, float[] truth, int[] rows, DeepTask task)
    {
        int m = predictions.Count, k = predictions[0][0].Length;
        var counts = new int[m];
        var sum = rows.Select(_ => new double[k]).ToArray();   // running sum of the chosen members' predictions
        for (int step = 1; step <= Iterations; step++)
        {
            int best = 0;
            double bestLoss = double.PositiveInfinity;
            for (int j = 0; j < m; j++)
            {
                double loss = 0;
                for (int r = 0; r < rows.Length; r++)
                    loss += Loss(sum[r], predictions[j][rows[r]], step, truth[rows[r]], task);
                if (loss < bestLoss - 1e-12) (best, bestLoss) = (j, loss);
            }
            counts[best]++;
            for (int r = 0; r < rows.Length; r++)
                for (int c = 0; c < k; c++) sum[r][c] += predictions[best][rows[r]][c];
        }
        return counts.Select(c => c / (double)Iterations).ToArray();
    }

    // The loss of one row when `next` joins the `step - 1` members summed so far.
    private static double Loss(double[] sum, float[] next, int step, float truth, DeepTask task)
    {
        switch (task)
        {
            case DeepTask.MulticlassClassification:
                return truth < 0 ? 0 : -Math.Log(Math.Max((sum[(int)truth] + next[(int)truth]) / step, 1e-15));
            case DeepTask.BinaryClassification:
                double p = Math.Clamp((sum[0] + next[0]) / step, 1e-15, 1 - 1e-15);
                return -(truth * Math.Log(p) + (1 - truth) * Math.Log(1 - p));
            default:
                double e = (sum[0] + next[0]) / step - truth;
                return e * e;
        }
    }

    private static float[] Combine(IReadOnlyList<float[][]> predictions, double[] weights, int row)
    {
        var result = new float[predictions[0][row].Length];
        for (int j = 0; j < predictions.Count; j++)
            for (int c = 0; c < result.Length; c++) result[c] += (float)(weights[j] * predictions[j][row][c]);
        return result;
    }

    /// <summary>Each row's label: a 0-based class (−1 when missing), 0/1, or the value.</summary>
    private static float[] Labels(IDataView data, string label, DeepTask task)
    {
        var column = data.Schema[label];
        var values = new List<float>();
        using var cursor = data.GetRowCursor([column]);
        switch (task)
        {
            case DeepTask.MulticlassClassification:
                var key = cursor.GetGetter<uint>(column);
                uint k = 0;
                while (cursor.MoveNext()) { key(ref k); values.Add((float)k - 1); }
                break;
            case DeepTask.BinaryClassification:
                var flag = cursor.GetGetter<bool>(column);
                bool f = false;
                while (cursor.MoveNext()) { flag(ref f); values.Add(f ? 1 : 0); }
                break;
            default:
                var number = cursor.GetGetter<float>(column);
                float x = 0;
                while (cursor.MoveNext()) { number(ref x); values.Add(x); }
                break;
        }
        return values.ToArray();
    }

    /// <summary>The column the ensemble averages: the probability (binary) or the score.</summary>
    internal static string ScoreColumn(DeepTask task) => task == DeepTask.BinaryClassification ? "Probability" : "Score";

    /// <summary>Each row's probabilities (multiclass), probability (binary) or value (regression), as a vector; null without that column.</summary>
    internal static float[][]? Scores(IDataView scored, DeepTask task)
    {
        if (scored.Schema.GetColumnOrNull(ScoreColumn(task)) is not { } column) return null;
        var rows = new List<float[]>();
        using var cursor = scored.GetRowCursor([column]);
        if (task == DeepTask.MulticlassClassification)
        {
            var get = cursor.GetGetter<VBuffer<float>>(column);
            var v = default(VBuffer<float>);
            while (cursor.MoveNext()) { get(ref v); rows.Add(v.DenseValues().ToArray()); }
        }
        else
        {
            var get = cursor.GetGetter<float>(column);
            float x = 0;
            while (cursor.MoveNext()) { get(ref x); rows.Add([x]); }
        }
        return rows.ToArray();
    }

    /// <summary>Cross-fitted predictions as the columns ML.NET's evaluators read.</summary>
    private static IDataView View(MLContext ml, float[] truth, float[][] predicted, DeepTask task, int classes)
    {
        switch (task)
        {
            case DeepTask.MulticlassClassification:
                var definition = SchemaDefinition.Create(typeof(MulticlassRow));
                definition[nameof(MulticlassRow.Label)].ColumnType = new KeyDataViewType(typeof(uint), classes);
                definition[nameof(MulticlassRow.PredictedLabel)].ColumnType = new KeyDataViewType(typeof(uint), classes);
                definition[nameof(MulticlassRow.Score)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, classes);
                // LoadFromEnumerable reads a key member as the 0-based class (it stores value + 1; uint.MaxValue wraps to missing).
                return ml.Data.LoadFromEnumerable(truth.Select((t, i) => new MulticlassRow
                {
                    Label = t < 0 ? uint.MaxValue : (uint)t, Score = predicted[i], PredictedLabel = (uint)Array.IndexOf(predicted[i], predicted[i].Max()),
                }), definition);
            case DeepTask.BinaryClassification:
                return ml.Data.LoadFromEnumerable(truth.Select((t, i) => new BinaryRow
                {
                    Label = t > 0.5f, Probability = predicted[i][0], Score = (float)Math.Log(Math.Clamp(predicted[i][0], 1e-7, 1 - 1e-7) / (1 - Math.Clamp(predicted[i][0], 1e-7, 1 - 1e-7))),
                    PredictedLabel = predicted[i][0] > 0.5f,
                }));
            default:
                return ml.Data.LoadFromEnumerable(truth.Select((t, i) => new RegressionRow { Label = t, Score = predicted[i][0] }));
        }
    }

    private sealed class MulticlassRow
    {
        public uint Label { get; set; }
        public float[] Score { get; set; } = [];
        public uint PredictedLabel { get; set; }
    }

    private sealed class BinaryRow
    {
        public bool Label { get; set; }
        public float Score { get; set; }
        public float Probability { get; set; }
        public bool PredictedLabel { get; set; }
    }

    private sealed class RegressionRow
    {
        public float Label { get; set; }
        public float Score { get; set; }
    }
}
