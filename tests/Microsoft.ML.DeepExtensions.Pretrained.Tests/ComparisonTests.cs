using Microsoft.ML.DeepExtensions.AutoML;
using Microsoft.ML.DeepExtensions.Tests;

namespace Microsoft.ML.DeepExtensions.Pretrained.Tests;

/// <summary>The pretrained candidates in the deep-vs-classic comparison (the slot NAS-BERT could only fill online).</summary>
public class ComparisonTests(ITestOutputHelper output)
{
    [Fact]
    public void MiniLM_candidates_compete_on_the_raw_text_next_to_classic_ones()
    {
        var ml = new MLContext(1);
        var sms = ml.Data.TakeRows(ml.Data.ShuffleRows(TestData.Sms(ml), seed: 2), 600);
        var registry = CandidateRegistry.CreateDefault();
        foreach (var c in PretrainedCandidates.For(PretrainedModels.ResNet18, PretrainedModels.MiniLmL6)) registry.Add(c);
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, "Class")
                .Append(ml.Transforms.Text.FeaturizeText("Features", "Text")),
            TextColumnName = "Text",
            Registry = registry,
            Candidates = ["all-MiniLM-L6-v2 (fine-tuned)", "all-MiniLM-L6-v2 embeddings + SDCA", "SDCA", "ResNet18 (fine-tuned)"],
            Trials = 1, MaxEpochs = 3, LatencySamples = 10, TimeBudget = TimeSpan.FromMinutes(5),
        }).Run(sms);
        output.WriteLine(result.ToString());

        // ResNet18 needs images: skipped with the reason; the text candidates read the raw text column.
        var resnet = result.Entries.Single(e => e.Name == "ResNet18 (fine-tuned)");
        Assert.Equal(CandidateStatus.Skipped, resnet.Status);
        Assert.Contains("Image", resnet.Error);
        foreach (var e in result.Entries.Where(e => e != resnet))
        {
            Assert.True(e.Status == CandidateStatus.Completed, $"{e.Name}: {e.Status} {e.Error}");
            // 13 % of messages are spam: every candidate must do far better than always answering "ham".
            Assert.True(e.Metric(Metrics.Accuracy) > 0.87, $"{e.Name}: accuracy {e.Metric(Metrics.Accuracy):F4}");
            Assert.True(e.ModelBytes > 0 && e.LatencyP50Milliseconds > 0, e.Name);
        }
        var fineTuned = result.Entries.Single(e => e.Name == "all-MiniLM-L6-v2 (fine-tuned)");
        Assert.True(fineTuned.Metric(Metrics.Accuracy) > 0.93, $"fine-tuned MiniLM: accuracy {fineTuned.Metric(Metrics.Accuracy):F4}");
        Assert.Equal("all-MiniLM-L6-v2 (pretrained)", DeepComparison.FindDeep(fineTuned.Model)!.Family);
    }

    [Fact]
    public void ResNet18_embeddings_under_SDCA_compete_on_image_features()
    {
        var ml = new MLContext(1);
        var images = Datasets.FashionMnist.Load(ml, Datasets.FashionMnist.FindDirectory("t10k"), "t10k", limit: 1000);
        var registry = CandidateRegistry.CreateDefault();
        foreach (var c in PretrainedCandidates.For(PretrainedModels.ResNet18, null)) registry.Add(c);
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            ImageShape = new ImageShape(1, 28, 28), Registry = registry, Candidates = ["ResNet18 embeddings + SDCA", "SDCA"],
            LatencySamples = 10, TimeBudget = TimeSpan.FromMinutes(3), Ensemble = false, NumberOfThreads = 1,
        }).Run(images);
        output.WriteLine(result.ToString());
        var embeddings = result.Entries.Single(e => e.Name == "ResNet18 embeddings + SDCA");
        Assert.True(embeddings.Status == CandidateStatus.Completed, $"{embeddings.Status} {embeddings.Error}");
        // 10 classes, 800 training images: ImageNet features at 64 × 64 carry the classes (chance 0.1).
        Assert.True(embeddings.Metric(Metrics.MicroAccuracy) > 0.6, $"accuracy {embeddings.Metric(Metrics.MicroAccuracy):F4}");
        Assert.Equal(64, embeddings.Parameters["Resolution"]);
    }
}
