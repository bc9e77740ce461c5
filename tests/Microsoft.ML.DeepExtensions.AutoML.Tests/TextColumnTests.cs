using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.AutoML;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>
/// Files shaped like a GitHub-issues export (an ID, a label, a title and a description of free text), made from the
/// Debian package descriptions: text columns become text features, the identifier is left out, and a candidate that
/// would not fit in memory fails alone.
/// </summary>
public class TextColumnTests(ITestOutputHelper output)
{
    /// <summary>ID (1, 2, …), Area (the Debian section, 20 classes), Title (the summary), Description: 1,600 rows.</summary>
    private static string IssuesFile(bool withLabel = true, int rows = 1600)
    {
        var lines = File.ReadLines(TestData.Path("debian-packages", "packages.tsv")).Skip(1).Take(rows)
            .Select(l => l.Split('\t')).Select((f, i) => withLabel ? $"{1000 + i}\t{f[1]}\t{f[2]}\t{f[3]}" : $"{1000 + i}\t{f[2]}\t{f[3]}");
        string path = Path.Combine(Path.GetTempPath(), $"issues-{Guid.NewGuid():N}.tsv");
        File.WriteAllLines(path, [withLabel ? "ID\tArea\tTitle\tDescription" : "ID\tTitle\tDescription", .. lines]);
        return path;
    }

    [Fact]
    public void Free_text_is_text_identifiers_are_ignored_and_roles_can_be_overridden()
    {
        var ml = new MLContext(1);
        string path = IssuesFile();
        var table = TabularData.Load(ml, path, "Area");
        foreach (var c in table.Columns) output.WriteLine(c.ToString());
        Assert.Equal(DeepTask.MulticlassClassification, table.Task);
        Assert.Equal(ColumnRole.Ignore, table.Columns.Single(c => c.Name == "ID").Role);
        Assert.Equal(["Title", "Description"], table.TextColumns);
        Assert.Empty(table.CategoricalColumns);
        Assert.Empty(table.NumericColumns);
        var features = (VectorDataViewType)table.Featurizer.Fit(table.Data).Transform(table.Data).Schema["Features"].Type;
        output.WriteLine($"{features.Size:N0} n-gram features");
        Assert.True(features.Size > 1000, $"{features.Size} features");

        // Adult keeps its inference: no text there (categoricals are one or two words), fnlwgt (all but distinct) stays numeric.
        var adult = TabularData.Load(ml, TestData.Path("adult", "adult.csv"), "label(IsOver50K)");
        Assert.Equal((6, 8, 0), (adult.NumericColumns.Count, adult.CategoricalColumns.Count, adult.TextColumns.Count));

        var asked = TabularData.Load(ml, path, "Area", roles: new Dictionary<string, ColumnRole> { ["title"] = ColumnRole.Ignore, ["ID"] = ColumnRole.Categorical });
        Assert.Equal(["Description"], asked.TextColumns);
        Assert.Equal(["ID"], asked.CategoricalColumns);
        Assert.Equal("asked for", asked.Columns.Single(c => c.Name == "Title").Reason);
        Assert.Contains("'Body'", Assert.Throws<ArgumentException>(() => TabularData.Load(ml, path, "Area", roles: new Dictionary<string, ColumnRole> { ["Body"] = ColumnRole.Text })).Message);
        Assert.Contains("'Title' cannot be numeric", Assert.Throws<ArgumentException>(() => TabularData.Load(ml, path, "Area", roles: new Dictionary<string, ColumnRole> { ["Title"] = ColumnRole.Numeric })).Message);
        File.Delete(path);
    }

    [Fact]
    public void A_candidate_over_its_memory_limit_fails_alone_and_the_best_model_scores_a_file_without_the_label()
    {
        var ml = new MLContext(1);
        string path = IssuesFile();
        var table = TabularData.Load(ml, path, "Area");
        // 1 MB: no deep network fits, so the MLP and the FT-Transformer fail before allocating; SDCA is not limited.
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Task = table.Task, Candidates = ["MLP", "FT-Transformer", "SDCA"], Trials = 1, MaxEpochs = 1,
            NumberOfThreads = 1, LatencySamples = 20, TimeBudget = TimeSpan.FromSeconds(90), CandidateMemoryLimitMegabytes = 1,
        }).Run(table.Data);
        output.WriteLine(result.ToString());
        foreach (var name in new[] { "MLP", "FT-Transformer" })
        {
            var e = result.Entries.Single(x => x.Name == name);
            Assert.Equal(CandidateStatus.Failed, e.Status);
            Assert.Contains("MemoryLimitMegabytes 1", e.Error);
        }
        var sdca = result.Entries.Single(x => x.Name == "SDCA");
        Assert.Equal(CandidateStatus.Completed, sdca.Status);
        Assert.True(sdca.Metric(Metrics.MicroAccuracy) > 0.4, $"SDCA on n-grams: {sdca.Metric(Metrics.MicroAccuracy):F4}");   // 20 classes; chance 0.05
        // The best model's per-class figures and confusion matrix, by the Debian sections' names.
        Assert.Equal(result.BestPerClass.Count, result.BestConfusion!.Length);
        Assert.Equal(result.Rows.Validation, result.BestConfusion.Sum(row => row.Sum()));
        output.WriteLine(string.Join(", ", result.BestPerClass.Select(c => $"{c.Class} {c.Rows} P {c.Precision:F2} R {c.Recall:F2}")));
        Assert.Contains(result.BestPerClass, c => c.Class == "net");
        string dir = Path.Combine(Path.GetTempPath(), $"issues-report-{Guid.NewGuid():N}");
        Assert.Contains(Reports.WriteAll(result, dir), f => f.EndsWith("report.html"));
        Assert.Contains("→ net", File.ReadAllText(Path.Combine(dir, "report.html")));

        // What `deepext predict` does: the saved model reads a file without the label, its columns found by name.
        string model = Path.Combine(dir, "best-model.zip");
        result.SaveBestModel(ml, model);
        var loaded = ml.Model.Load(model, out var schema);
        string unlabelled = IssuesFile(withLabel: false, rows: 200);
        var rows = TabularData.LoadFor(ml, unlabelled, schema, out var missing);
        Assert.Equal(["Area"], missing);
        var fromFile = ml.Data.CreateEnumerable<Predicted>(loaded.Transform(rows), reuseRowObject: false).Select(p => p.PredictedLabel).ToList();
        var fromData = ml.Data.CreateEnumerable<Predicted>(loaded.Transform(ml.Data.TakeRows(table.Data, 200)), reuseRowObject: false).Select(p => p.PredictedLabel).ToList();
        Assert.Equal(200, fromFile.Count);
        Assert.Equal(fromData, fromFile);
        Directory.Delete(dir, true);
        File.Delete(path);
        File.Delete(unlabelled);
    }

    [Fact]
    public void Sequence_candidates_read_the_raw_text_as_tokens_while_the_others_read_n_grams()
    {
        var ml = new MLContext(1);
        string path = IssuesFile();
        var table = TabularData.Load(ml, path, "Area");
        ComparisonResult Run(string text) => ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Task = table.Task, TextColumnName = text, Candidates = ["LSTM", "SDCA"], Trials = 1, MaxEpochs = 20,
            NumberOfThreads = 1, LatencySamples = 20, TimeBudget = TimeSpan.FromMinutes(3), Ensemble = false,
        }).Run(table.Data);

        // Without a text column the features are n-grams only: no token sequence, so the LSTM does not apply.
        var withoutText = Run(null).Entries.Single(e => e.Name == "LSTM");
        Assert.Equal(CandidateStatus.Skipped, withoutText.Status);
        Assert.Contains("does not apply", withoutText.Error);

        var result = Run("Description");
        output.WriteLine(result.ToString());
        var lstm = result.Entries.Single(e => e.Name == "LSTM");
        Assert.True(lstm.Status == CandidateStatus.Completed, $"{lstm.Status}: {lstm.Error}");
        // Its model tokenizes the description itself (the vocabulary is learned on the training part) ...
        var scored = lstm.Model!.GetOutputSchema(table.Featurizer.Fit(table.Data).Transform(table.Data).Schema);
        Assert.IsType<KeyDataViewType>(((VectorDataViewType)scored[DeepCandidates.TextTokensColumnName].Type).ItemType);
        // ... and learns from the words: 20 classes, the largest 8 % of the rows; 0.2344 measured (20 epochs from scratch
        // on 1,263 rows: far below SDCA's n-grams at 0.52, as expected of a network without pretraining on this little text).
        double accuracy = lstm.Metric(Metrics.MicroAccuracy);
        Assert.True(accuracy > 0.15, $"LSTM on the description's tokens: {accuracy:F4}");
        File.Delete(path);
    }

    private sealed class Predicted
    {
        public uint PredictedLabel { get; set; }
    }
}
