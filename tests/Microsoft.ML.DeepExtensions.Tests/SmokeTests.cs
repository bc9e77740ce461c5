using Microsoft.ML;

namespace Microsoft.ML.DeepExtensions.Tests;

public class SmokeTests
{
    [Fact]
    public void MlpOnAdultLearns()
    {
        var ml = new MLContext(seed: 1);
        var data = TestData.Adult(ml);
        var split = ml.Data.TrainTestSplit(data, testFraction: 0.2, seed: 1);
        var pipeline = TestData.AdultFeaturizer(ml).Append(ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 5, Verbose = true, Seed = 1 }));
        var model = pipeline.Fit(split.TrainSet);
        var metrics = ml.BinaryClassification.Evaluate(model.Transform(split.TestSet));
        Console.WriteLine($"accuracy {metrics.Accuracy:F4} auc {metrics.AreaUnderRocCurve:F4}");
        Assert.True(metrics.Accuracy > 0.8);
    }
}
