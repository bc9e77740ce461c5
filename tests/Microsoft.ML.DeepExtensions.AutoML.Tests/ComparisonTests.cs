using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.AutoML;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The deep-vs-classic comparison on real data (UCI Adult and optdigits from ../shared/data).</summary>
public class ComparisonTests(ITestOutputHelper output)
{
    // 4,000 Adult rows (binary, 6 numeric + 8 categorical columns), featurized by TabularData's inference.
    private static (IDataView Data, TabularData Table) Adult(MLContext ml, int rows = 4000)
    {
        var table = TabularData.Load(ml, TestData.Path("adult", "adult.csv"), "label(IsOver50K)");
        return (ml.Data.TakeRows(table.Data, rows), table);
    }

    [Fact]
    public void Sequence_families_compete_on_token_input_and_classic_ones_are_not_offered_it()
    {
        var ml = new MLContext(1);
        var sms = ml.Data.TakeRows(ml.Data.ShuffleRows(TestData.Sms(ml), seed: 2), 4000);
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = TestData.SmsTokenizer(ml), FeatureColumnName = "Tokens", Trials = 1, MaxEpochs = 6, NumberOfThreads = 1,
            LatencySamples = 20, TimeBudget = TimeSpan.FromMinutes(4),
        }).Run(sms);
        output.WriteLine(result.ToString());

        // Token sequences (a key vector) are input only the LSTM and the transformer read.
        Assert.Equal(["LSTM", "Transformer", "WeightedEnsemble"], result.Entries.Select(e => e.Name).OrderBy(n => n));
        foreach (var e in result.Entries)
        {
            Assert.True(e.Status == CandidateStatus.Completed, $"{e.Name}: {e.Status} {e.Error}");
            // 13 % of messages are spam: both must do far better than always answering "ham".
            Assert.True(e.Metric(Metrics.Accuracy) > 0.93, $"{e.Name}: accuracy {e.Metric(Metrics.Accuracy):F4}");
            Assert.True(e.LatencyP50Milliseconds > 0 && e.ModelBytes > 0, e.Name);
        }
    }

    [Fact]
    public void Tabular_data_infers_task_columns_and_header()
    {
        var ml = new MLContext(1);
        var adult = TabularData.Load(ml, TestData.Path("adult", "adult.csv"), "label(isover50k)");
        Assert.Equal(DeepTask.BinaryClassification, adult.Task);
        Assert.Equal("1", adult.PositiveClass);
        Assert.Equal(6, adult.NumericColumns.Count);
        Assert.Equal(8, adult.CategoricalColumns.Count);
        var digits = TabularData.Load(ml, TestData.Path("optdigits", "optdigits-train.csv"), "64");
        Assert.Equal(DeepTask.MulticlassClassification, digits.Task);
        Assert.Equal("Column64", digits.LabelColumn);
        Assert.Equal(64, digits.NumericColumns.Count);
        var featurized = digits.Featurizer.Fit(digits.Data).Transform(digits.Data);
        Assert.Equal(64, ((VectorDataViewType)featurized.Schema["Features"].Type).Size);
        Assert.Equal(10UL, ((KeyDataViewType)featurized.Schema["Label"].Type).Count);
        var e = Assert.Throws<ArgumentException>(() => TabularData.Load(ml, TestData.Path("adult", "adult.csv"), "income"));
        Assert.Contains("'income'", e.Message);
        Assert.Contains("hours-per-week", e.Message);
    }

    [Fact]
    public void Every_leaderboard_column_is_filled_for_every_binary_candidate_and_the_best_model_round_trips()
    {
        var ml = new MLContext(1);
        var (data, table) = Adult(ml);
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, TimeBudget = TimeSpan.FromMinutes(4), Trials = 2, MaxEpochs = 2, NumberOfThreads = 1,
            LatencySamples = 50,
        }).Run(data);
        output.WriteLine(result.ToString());

        // Every registered binary candidate for vectors: deep (perceptron, MLP, FT-Transformer) and classic (six trainers);
        // no CNN without an image shape, no LSTM/transformer without token sequences; and their weighted ensemble.
        string[] expected = ["Perceptron", "MLP", "FT-Transformer", "LightGBM", "FastTree", "FastForest", "SDCA", "L-BFGS", "AveragedPerceptron", "WeightedEnsemble"];
        Assert.Equal(expected.OrderBy(n => n), result.Entries.Select(e => e.Name).OrderBy(n => n));
        foreach (var e in result.Entries)
        {
            Assert.True(e.Status == CandidateStatus.Completed, $"{e.Name}: {e.Status} {e.Error}");
            // Filled: a value for every metric (a perceptron's Platt-scaled log-loss may honestly be +∞).
            foreach (var m in Metrics.For(DeepTask.BinaryClassification))
                Assert.False(double.IsNaN(e.Metric(m)), $"{e.Name}: {m} = {e.Metric(m)}");
            // Adult's majority class is 76 %: every candidate must beat it, and rank its rows by risk well.
            Assert.True(e.Metric(Metrics.Accuracy) > 0.77, $"{e.Name}: accuracy {e.Metric(Metrics.Accuracy):F4}");
            Assert.True(e.Metric(Metrics.Auc) > 0.80, $"{e.Name}: AUC {e.Metric(Metrics.Auc):F4}");
            Assert.True(e.TrainSeconds > 0 && e.TotalSeconds >= e.TrainSeconds, e.Name);
            Assert.True(e.PeakMemoryBytes > 10 << 20, $"{e.Name}: peak {e.PeakMemoryBytes}");
            Assert.True(e.LatencyP50Milliseconds > 0 && e.LatencyP95Milliseconds >= e.LatencyP50Milliseconds, e.Name);
            Assert.True(e.ThroughputRowsPerSecond > 0, e.Name);
            Assert.True(e.ModelBytes > 0, e.Name);
            Assert.False(string.IsNullOrEmpty(e.Device), e.Name);
            Assert.NotEmpty(e.Parameters);
            Assert.True(e.Rank >= 1, e.Name);
            if (e.Kind == CandidateKind.Deep)
            {
                Assert.NotNull(e.History);
                Assert.NotEmpty(e.Trials);   // 2 configurations, then the better one for 2 epochs
                Assert.Equal(3, e.Trials.Count);
            }
        }
        Assert.Equal(Enumerable.Range(1, expected.Length), result.Entries.Select(e => e.Rank));
        var accuracies = result.Entries.Select(e => e.Metric(Metrics.Accuracy)).ToList();
        Assert.Equal(accuracies.OrderByDescending(a => a), accuracies);

        // DataFrame: one row per candidate, a column per metric and measurement.
        var frame = result.ToDataFrame();
        Assert.Equal(expected.Length, frame.Rows.Count);
        foreach (var column in new[] { "Accuracy", "AUC", "F1", "LogLoss", "TrainSeconds", "PeakMemoryMB", "LatencyP50Ms", "LatencyP95Ms", "ThroughputRowsPerSec", "ModelBytes", "Device", "Parameters" })
            Assert.Contains(column, frame.Columns.Select(c => c.Name));

        // Reports: CSV, JSON, HTML with its two plots.
        string dir = Path.Combine(Path.GetTempPath(), $"compare-test-{Guid.NewGuid():N}");
        try
        {
            Reports.WriteAll(result, dir);
            var csv = File.ReadAllLines(Path.Combine(dir, "leaderboard.csv"));
            Assert.Equal(expected.Length + 1, csv.Length);
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "leaderboard.json")));
            Assert.Equal(expected.Length, json.RootElement.GetProperty("Entries").GetArrayLength());
            string html = File.ReadAllText(Path.Combine(dir, "report.html"));
            Assert.Equal(2, html.Split("<svg").Length - 1);
            Assert.DoesNotContain("http://", html.Replace("http://www.w3.org/2000/svg", "").Replace("http://www.w3.org/1999/xlink", ""));   // namespaces only: nothing fetched
            foreach (var name in expected) Assert.Contains(name, html);

            // The best model reads the raw columns, saves, loads in a fresh context and scores like before.
            string zip = Path.Combine(dir, "best.zip");
            result.SaveBestModel(ml, zip);
            var fresh = new MLContext();
            var loaded = fresh.Deep().LoadModel(zip, out _);
            var probe = ml.Data.TakeRows(data, 300);
            var before = result.BestModel.Transform(probe).GetColumn<bool>("PredictedLabel").ToArray();
            var after = loaded.Transform(probe).GetColumn<bool>("PredictedLabel").ToArray();
            Assert.Equal(before, after);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Multiclass_images_include_the_cnn_and_the_vit_and_rank_by_micro_accuracy()
    {
        var ml = new MLContext(1);
        var digits = TabularData.Load(ml, TestData.Path("optdigits", "optdigits-train.csv"), "64");
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = digits.Featurizer, ImageShape = new ImageShape(1, 8, 8), Candidates = ["CNN", "ViT", "MLP", "LightGBM", "SDCA", "Perceptron"],
            Trials = 2, MaxEpochs = 3, NumberOfThreads = 1, LatencySamples = 50, TimeBudget = TimeSpan.FromMinutes(3),
        }).Run(digits.Data);
        output.WriteLine(result.ToString());
        Assert.Equal(Metrics.MicroAccuracy, result.RankBy);
        var perceptron = result.Entries.Single(e => e.Name == "Perceptron");
        Assert.Equal(CandidateStatus.Skipped, perceptron.Status);   // binary only
        Assert.Contains("does not apply", perceptron.Error);
        // ViT from scratch on 3,035 8×8 images in 3 epochs: it runs and learns (0.31–0.41 measured; chance is 0.10), but it
        // is far from the CNN here — transformers without convolutions need more data and epochs (see benchmarks/results).
        var vit = result.Entries.Single(e => e.Name == "ViT");
        Assert.True(vit.Status == CandidateStatus.Completed && vit.Metric(Metrics.MicroAccuracy) > 0.2, $"ViT: {vit.Status} {vit.Error} {vit.Metric(Metrics.MicroAccuracy):F4}");
        foreach (var e in result.Entries.Where(e => e.Name is not ("Perceptron" or "ViT")))
        {
            Assert.True(e.Status == CandidateStatus.Completed, $"{e.Name}: {e.Status} {e.Error}");
            Assert.True(e.Metric(Metrics.MicroAccuracy) > 0.90, $"{e.Name}: micro-accuracy {e.Metric(Metrics.MicroAccuracy):F4}");   // 10 classes: chance is 0.10
            Assert.True(double.IsFinite(e.Metric(Metrics.LogLoss)) && e.Metric(Metrics.MacroAccuracy) > 0.9, e.Name);
        }
        Assert.Equal("Cnn", DeepComparison.FindDeep(result.Entries.Single(e => e.Name == "CNN").Model)!.Family, ignoreCase: true);
    }

    [Fact]
    public void Regression_with_k_fold_cross_validation_averages_the_folds()
    {
        var ml = new MLContext(1);
        // Age from the other Adult columns: a real regression target (R² well above 0 needs learning, 1 is impossible).
        var table = TabularData.Load(ml, TestData.Path("adult", "adult.csv"), "age");
        Assert.Equal(DeepTask.Regression, table.Task);
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Folds = 3, Candidates = ["MLP", "LightGBM", "SDCA", "FastForest"], Trials = 1, MaxEpochs = 3,
            NumberOfThreads = 1, LatencySamples = 50,
        }).Run(ml.Data.TakeRows(table.Data, 3000));
        output.WriteLine(result.ToString());
        Assert.Equal(3, result.Folds);
        Assert.Equal(Metrics.RSquared, result.RankBy);
        Assert.True(result.Rows.Train is > 1700 and < 2300, $"fold 1 trains on about 2/3 of 3,000 rows: {result.Rows.Train}");
        foreach (var e in result.Entries)
        {
            Assert.True(e.Status == CandidateStatus.Completed, $"{e.Name}: {e.Status} {e.Error}");
            Assert.True(e.Metric(Metrics.RSquared) > 0.2, $"{e.Name}: R² {e.Metric(Metrics.RSquared):F3}");
            Assert.True(e.Metric(Metrics.Mae) < e.Metric(Metrics.Rmse) && e.Metric(Metrics.Rmse) < 13.6, $"{e.Name}: RMSE {e.Metric(Metrics.Rmse):F2} (the ages' standard deviation is 13.6)");
        }
        var rs = result.Entries.Select(e => e.Metric(Metrics.RSquared)).ToList();
        Assert.Equal(rs.OrderByDescending(r => r), rs);
    }

    [Fact]
    public void The_time_budget_is_respected_and_the_deep_candidate_keeps_the_epochs_it_finished()
    {
        var ml = new MLContext(1);
        var (data, table) = Adult(ml, 8000);
        var budget = TimeSpan.FromSeconds(25);
        var watch = Stopwatch.StartNew();
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Candidates = ["MLP"], Trials = 1, MaxEpochs = 10_000, NumberOfThreads = 1, TimeBudget = budget,
        }).Run(data);
        var elapsed = watch.Elapsed;
        output.WriteLine(result.ToString());
        var mlp = Assert.Single(result.Entries);
        Assert.Equal(CandidateStatus.Completed, mlp.Status);
        Assert.Equal(StopReason.Cancelled, mlp.History.StopReason);   // stopped by its deadline, not by running out of epochs
        Assert.True(mlp.History.Epochs.Count >= 1);
        Assert.True(mlp.Metric(Metrics.Accuracy) > 0.77);
        // The featurization and split happen inside the budget too; 10 % tolerance.
        Assert.True(elapsed <= budget * 1.1, $"took {elapsed.TotalSeconds:F1} s for a {budget.TotalSeconds} s budget");
        Assert.True(result.Elapsed <= budget * 1.1);
    }

    [Fact]
    public void A_classic_trainer_is_stopped_at_its_deadline_and_reported_as_timed_out()
    {
        var ml = new MLContext(1);
        var (data, table) = Adult(ml, 32_561);   // all of Adult: 100 trees take 0.7 s (fast CI CPU) to several seconds
        var watch = Stopwatch.StartNew();
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Candidates = ["FastForest", "SDCA"], NumberOfThreads = 1,
            // 50 ms: an order of magnitude less than the fastest CPU seen needs for 100 trees on 26,000 rows (0.5 s was
            // not enough margin: a CI machine finished in 0.7 s with its deadline at 0.45 s and checks too sparse to stop it).
            CandidateTimeBudget = TimeSpan.FromSeconds(0.05),
        }).Run(data);
        output.WriteLine(result.ToString());
        var forest = result.Entries.Single(e => e.Name == "FastForest");
        Assert.Equal(CandidateStatus.TimedOut, forest.Status);
        Assert.Contains("time budget", forest.Error);
        Assert.True(forest.TotalSeconds < 5, $"FastForest ran {forest.TotalSeconds:F1} s past a 0.05 s budget");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(60));
    }

    [Fact]
    public void Cancellation_keeps_the_finished_candidates()
    {
        var ml = new MLContext(1);
        var (data, table) = Adult(ml);
        using var cts = new CancellationTokenSource();
        var events = new List<string>();
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Candidates = ["FT-Transformer", "MLP", "LightGBM", "SDCA"], Trials = 1, MaxEpochs = 500,
            NumberOfThreads = 1, CancellationToken = cts.Token,
            // Cancel as the MLP finishes its second epoch (classic candidates run first, then the deep ones in registry
            // order: the MLP before the FT-Transformer).
            Progress = new Sync(p => { events.Add(p.Stage); if (p.Epoch is { Epoch: 2 } && p.Candidate == "MLP") cts.Cancel(); }),
        }).Run(data);
        output.WriteLine(result.ToString());
        Assert.True(result.Cancelled);
        Assert.Equal(CandidateStatus.Completed, result.Entries.Single(e => e.Name == "LightGBM").Status);
        Assert.Equal(CandidateStatus.Completed, result.Entries.Single(e => e.Name == "SDCA").Status);
        Assert.Equal(CandidateStatus.Cancelled, result.Entries.Single(e => e.Name == "MLP").Status);
        Assert.Equal(CandidateStatus.Skipped, result.Entries.Single(e => e.Name == "FT-Transformer").Status);
        Assert.Contains(result.Best!.Name, new[] { "LightGBM", "SDCA" });
        Assert.True(result.Best.Metric(Metrics.Accuracy) > 0.8);
        Assert.NotNull(result.BestModel);
        Assert.Contains("CANCELLED", Reports.ConsoleTable(result));
    }

    [Fact]
    public void A_failing_candidate_is_reported_with_its_error_and_the_run_continues()
    {
        var ml = new MLContext(1);
        var (data, table) = Adult(ml, 2000);
        // A new family joins with one registration; this one is broken (a negative learning rate fails validation).
        var registry = CandidateRegistry.CreateDefault().Add(new CandidateFactory
        {
            Name = "BrokenMLP",
            Kind = CandidateKind.Deep,
            Tasks = [DeepTask.BinaryClassification],
            Build = (c, s) => c.Context.Deep().Mlp(s.Configure(c, new MlpTrainer.Options { LearningRate = -1 })),
        });
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Registry = registry, Candidates = ["BrokenMLP", "LightGBM"], NumberOfThreads = 1,
        }).Run(data);
        output.WriteLine(result.ToString());
        var broken = result.Entries.Single(e => e.Name == "BrokenMLP");
        Assert.Equal(CandidateStatus.Failed, broken.Status);
        Assert.Contains("LearningRate", broken.Error);
        Assert.Equal(0, broken.Rank);
        var lgbm = result.Entries.Single(e => e.Name == "LightGBM");
        Assert.Equal(CandidateStatus.Completed, lgbm.Status);
        Assert.Equal(1, lgbm.Rank);
        Assert.Same(lgbm, result.Best);
        Assert.Contains("BrokenMLP", Reports.Html(result));
    }

    [Fact]
    public void Bad_options_and_columns_fail_before_training_with_the_name()
    {
        var ml = new MLContext(1);
        var (data, table) = Adult(ml, 500);
        var e = Assert.Throws<ArgumentException>(() => ml.Deep().Comparison(new ComparisonOptions { Featurizer = table.Featurizer, LabelColumnName = "Income" }).Run(data));
        Assert.Contains("'Income'", e.Message);
        e = Assert.Throws<ArgumentException>(() => ml.Deep().Comparison(new ComparisonOptions { Featurizer = table.Featurizer, Candidates = ["XGBoost"] }).Run(data));
        Assert.Contains("XGBoost", e.Message);
        Assert.Contains("LightGBM", e.Message);
        e = Assert.Throws<ArgumentException>(() => ml.Deep().Comparison(new ComparisonOptions { Featurizer = table.Featurizer, Task = DeepTask.Regression }).Run(data));
        Assert.Contains("Single", e.Message);
        Assert.Throws<ArgumentException>(() => ml.Deep().Comparison(new ComparisonOptions { TimeBudget = TimeSpan.Zero }).Run(data));
    }

    private sealed class Sync(Action<ComparisonProgress> action) : IProgress<ComparisonProgress>
    {
        public void Report(ComparisonProgress value) => action(value);
    }
}
