using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.AutoML;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The weighted ensemble row: selected over the finished candidates, scored as its parts combined, saved and loaded as one model.</summary>
public class EnsembleTests(ITestOutputHelper output)
{
    private sealed class AdultFeatures
    {
        [VectorType] public float[] Features { get; set; } = [];
    }

    private sealed class Scored
    {
        public float Probability { get; set; }
        public bool PredictedLabel { get; set; }
    }

    [Fact]
    public void The_ensemble_scores_like_its_weighted_parts_and_round_trips_as_one_model()
    {
        var ml = new MLContext(1);
        var table = TabularData.Load(ml, TestData.Path("adult", "adult.csv"), "label(IsOver50K)");
        var data = ml.Data.TakeRows(table.Data, 4000);
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Candidates = ["MLP", "LightGBM", "SDCA"], TimeBudget = TimeSpan.FromMinutes(2), Trials = 1, MaxEpochs = 3,
            NumberOfThreads = 1, LatencySamples = 20,
        }).Run(data);
        output.WriteLine(result.ToString());

        var row = result.Entries.Single(e => e.Name == "WeightedEnsemble");
        Assert.Equal(CandidateStatus.Completed, row.Status);
        Assert.Equal(CandidateKind.Ensemble, row.Kind);
        var ensemble = Assert.IsType<WeightedEnsembleTransformer>(row.Model);
        Assert.Equal(1.0, ensemble.Weights.Sum(), 1e-9);
        Assert.All(ensemble.Weights, w => Assert.Equal(0, Math.Round(w * Ensemble.Iterations, 6) % 1));   // multiples of 1/25
        double bestSingle = result.Entries.Where(e => e.Kind != CandidateKind.Ensemble && e.Status == CandidateStatus.Completed).Max(e => e.Metric(Metrics.Accuracy));
        // Cross-fitted, so it is no sure thing to beat the best part on 800 rows; it must not fall clearly behind.
        Assert.True(row.Metric(Metrics.Accuracy) >= bestSingle - 0.01, $"ensemble {row.Metric(Metrics.Accuracy):F4} vs best single {bestSingle:F4}");
        Assert.True(row.LatencyP50Milliseconds > 0 && row.ModelBytes > 0 && row.ThroughputRowsPerSecond > 0);

        // Its probability is the weighted mean of its members' probabilities, row by row.
        var featurizer = ((TransformerChain<ITransformer>)result.BestModel!).First();
        var features = ml.Data.TakeRows(featurizer.Transform(data), 200);
        var combined = ensemble.Transform(features).GetColumn<float>("Probability").ToArray();
        var parts = ensemble.Members.Select(m => m.Transform(features).GetColumn<float>("Probability").ToArray()).ToList();
        for (int i = 0; i < combined.Length; i++)
            Assert.Equal(parts.Select((p, j) => ensemble.Weights[j] * p[i]).Sum(), combined[i], 5);
        Assert.Equal(combined.Select(p => p > 0.5f), ensemble.Transform(features).GetColumn<bool>("PredictedLabel"));

        // One model file: saved, loaded in a fresh context, the same scores through Transform and a PredictionEngine.
        string path = Path.Combine(Path.GetTempPath(), $"ensemble-{Guid.NewGuid():N}.zip");
        ml.Model.Save(ensemble, features.Schema, path);
        var fresh = new MLContext();
        var loaded = fresh.Deep().LoadModel(path, out _);
        Assert.IsType<WeightedEnsembleTransformer>(loaded);
        Assert.Equal(combined, loaded.Transform(features).GetColumn<float>("Probability"));
        var definition = SchemaDefinition.Create(typeof(AdultFeatures));
        definition[nameof(AdultFeatures.Features)].ColumnType = features.Schema["Features"].Type;
        var engine = fresh.Model.CreatePredictionEngine<AdultFeatures, Scored>(loaded, ignoreMissingColumns: true, inputSchemaDefinition: definition);
        var rows = ml.Data.CreateEnumerable<AdultFeatures>(features, reuseRowObject: false).Take(20).ToList();
        for (int i = 0; i < rows.Count; i++) Assert.Equal(combined[i], engine.Predict(rows[i]).Probability, 6);
        File.Delete(path);
    }

    [Fact]
    public void A_multiclass_ensemble_is_measured_on_the_classes_it_predicts()
    {
        var ml = new MLContext(1);
        var digits = TabularData.Load(ml, TestData.Path("optdigits", "optdigits-train.csv"), "64");
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = digits.Featurizer, Candidates = ["MLP", "SDCA", "LightGBM"], Trials = 1, MaxEpochs = 3, NumberOfThreads = 1,
            LatencySamples = 20, TimeBudget = TimeSpan.FromMinutes(2),
        }).Run(digits.Data);
        output.WriteLine(result.ToString());
        var row = result.Entries.Single(e => e.Name == "WeightedEnsemble");
        Assert.Equal(CandidateStatus.Completed, row.Status);
        double best = result.Entries.Where(e => e.Kind != CandidateKind.Ensemble).Max(e => e.Metric(Metrics.MicroAccuracy));
        Assert.True(row.Metric(Metrics.MicroAccuracy) >= best - 0.02, $"ensemble {row.Metric(Metrics.MicroAccuracy):F4} vs best single {best:F4}");
        // Its predicted classes are the argmax of its averaged probabilities, as ML.NET's evaluator reads them.
        var featurizer = ((TransformerChain<ITransformer>)result.BestModel!).First();
        var scored = row.Model!.Transform(ml.Data.TakeRows(featurizer.Transform(digits.Data), 300));
        var m = ml.MulticlassClassification.Evaluate(scored);
        Assert.True(m.MicroAccuracy > 0.9, $"ensemble on training rows: {m.MicroAccuracy:F4}");
    }
}
