using Microsoft.ML;
using TorchSharp;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>Every tensor is disposed: no growth in live tensors across Fit + Transform + PredictionEngine + Dispose.</summary>
public class ResourceTests
{
    private readonly ITestOutputHelper _out;
    public ResourceTests(ITestOutputHelper output) => _out = output;

    /// <summary>Returns the number of parameters of the network it trained.</summary>
    private static int RunOnce(MLContext ml, IDataView train, IDataView test)
    {
        var o = Fixtures.QuickMlp(2);
        o.BatchNorm = true;
        o.EarlyStopping = new EarlyStoppingOptions { Patience = 5 };
        using var model = ml.Deep().Mlp(o).Fit(train);
        var scored = ml.Data.CreateEnumerable<Fixtures.BinaryPrediction>(model.Transform(test), reuseRowObject: false).ToList();
        Assert.Equal(1797, scored.Count);
        var engine = ml.Model.CreatePredictionEngine<Fixtures.BinaryRow, Fixtures.BinaryPrediction>(model);
        foreach (var row in ml.Data.CreateEnumerable<Fixtures.BinaryRow>(test, reuseRowObject: false).Take(20)) engine.Predict(row);
        return model.Network.parameters().Count();
    }

    [Fact]
    public void FitTransformAndScoringLeakNoTensors()
    {
        var ml = new MLContext();
        var train = Fixtures.DigitsBinary(ml, "train");
        var test = Fixtures.DigitsBinary(ml, "test");
        RunOnce(ml, train, test);           // warm-up: lazily created statics
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = torch.Tensor.TotalCount;
        int parameters = RunOnce(ml, train, test) + RunOnce(ml, train, test);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long after = torch.Tensor.TotalCount;
        _out.WriteLine($"live tensors before {before}, after two more Fit+Transform+Predict+Dispose cycles {after}; parameters created {parameters}");
        // TorchSharp 0.107's Parameter constructor takes over the handle of the tensor it wraps (MoveHandle) without
        // decrementing TotalCount for that wrapper, so each Parameter ever built adds 1 to the counter without holding
        // any memory. Everything beyond that would be a tensor our code failed to dispose.
        Assert.Equal(before + parameters, after);
    }
}
