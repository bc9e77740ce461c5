using Microsoft.ML;
using Microsoft.ML.DeepExtensions.AutoML;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>Deep candidates spend their budget: halving continues trials from their checkpoints, and the winner trains on until it converges or its time ends.</summary>
public class BudgetTests(ITestOutputHelper output)
{
    private static (IDataView Data, TabularData Table) Adult(MLContext ml)
    {
        var table = TabularData.Load(ml, TestData.Path("adult", "adult.csv"), "label(IsOver50K)");
        return (ml.Data.TakeRows(table.Data, 4000), table);
    }

    [Fact]
    public void Successive_halving_continues_each_trial_from_its_checkpoint()
    {
        var ml = new MLContext(1);
        var (data, table) = Adult(ml);
        var epochEvents = new List<EpochRecord>();
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Candidates = ["MLP"], Trials = 4, MaxEpochs = 4, NumberOfThreads = 1, LatencySamples = 20,
            TimeBudget = TimeSpan.FromMinutes(3), Ensemble = false,
            Progress = new Sink(p => { if (p.Epoch is { } e) lock (epochEvents) epochEvents.Add(e); }),
        }).Run(data);
        output.WriteLine(result.ToString());
        var mlp = result.Entries.Single();
        Assert.Equal(CandidateStatus.Completed, mlp.Status);

        // 4 configurations × 1 epoch, the best 2 on to epoch 2, the best one on to epoch 4: 4 + 2 + 2 = 8 epochs trained,
        // where retraining each rung from epoch 1 would take 4 + 4 + 4 = 12.
        foreach (var t in mlp.Trials) output.WriteLine($"rung {t.Rung}: {t.Epochs} epochs, {t.Parameters}, score {t.Score:F4}");
        Assert.Equal([1, 1, 1, 1, 2, 2, 4], mlp.Trials.Select(t => t.Epochs));
        Assert.Equal(8, epochEvents.Count);
        // The winner's history runs 1, 2, 3, 4 with no epoch repeated, and holds the epochs of its earlier rungs.
        Assert.Equal([1, 2, 3, 4], mlp.History!.Epochs.Select(e => e.Epoch));
        Assert.Equal(StopReason.Completed, mlp.History.StopReason);   // MaxEpochs given: a cap, no budget-driven phase
        Assert.Contains("finished at", result.Ending);
    }

    [Fact]
    public void Without_an_epoch_cap_the_best_configuration_trains_on_until_it_converges_or_its_time_ends()
    {
        var ml = new MLContext(1);
        var (data, table) = Adult(ml);
        var budget = TimeSpan.FromSeconds(45);
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Candidates = ["MLP", "SDCA"], Trials = 2, NumberOfThreads = 1, LatencySamples = 20, TimeBudget = budget,
        }).Run(data);
        output.WriteLine(result.ToString());
        var mlp = result.Entries.Single(e => e.Name == "MLP");
        Assert.Equal(CandidateStatus.Completed, mlp.Status);
        // Halving ends at the family's 10 epochs; the budget buys more, until early stopping or the deadline.
        Assert.True(mlp.History!.Epochs.Count > 10, $"{mlp.History.Epochs.Count} epochs");
        Assert.Contains(mlp.History.StopReason, new[] { StopReason.EarlyStopped, StopReason.Cancelled });
        Assert.Equal(Enumerable.Range(1, mlp.History.Epochs.Count), mlp.History.Epochs.Select(e => e.Epoch));
        Assert.True(result.Elapsed < budget * 1.1, $"{result.Elapsed.TotalSeconds:F1} s of {budget.TotalSeconds} s");
        Assert.Matches("budget spent|converged", result.Ending);
    }

    private sealed class Sink(Action<ComparisonProgress> action) : IProgress<ComparisonProgress>
    {
        public void Report(ComparisonProgress value) => action(value);
    }
}
