using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>Family-specific behaviour of the perceptron and the MLP, devices, and the data path's input forms.</summary>
public class FamilyTests
{
    private readonly ITestOutputHelper _out;
    public FamilyTests(ITestOutputHelper output) => _out = output;

    private sealed class GateRow
    {
        [VectorType(2)] public float[] Features { get; set; }
        public bool Label { get; set; }
    }

    [Fact]
    public void PerceptronStopsWhenAnEpochHasNoMistakes()
    {
        // Logical AND is linearly separable: Rosenblatt's convergence theorem says the rule stops making mistakes.
        var ml = new MLContext();
        var rows = Enumerable.Range(0, 40).Select(i => new GateRow { Features = [i % 2, (i / 2) % 2], Label = i % 2 == 1 && (i / 2) % 2 == 1 });
        var data = ml.Data.LoadFromEnumerable(rows);
        var options = new PerceptronTrainer.Options { Epochs = 100, Averaged = false, StandardizeFeatures = false, Seed = 1, BatchSize = 4 };
        using var model = ml.Deep().Perceptron(options).Fit(data);
        var h = model.History;
        _out.WriteLine(string.Join(", ", h.Epochs.Select(e => e.TrainLoss.ToString("F3"))));
        Assert.Equal(StopReason.Converged, h.StopReason);
        Assert.True(h.Epochs.Count < 100);
        Assert.Equal(0, h.Epochs[^1].TrainLoss);
        Assert.True(h.Epochs[0].TrainLoss > 0);
        var preds = ml.Data.CreateEnumerable<PerceptronPrediction>(model.Transform(data), false).ToList();
        var labels = rows.Select(r => r.Label).ToList();
        Assert.Equal(labels, preds.Select(p => p.PredictedLabel));
        Assert.All(preds, p => Assert.Equal(p.Score > 0, p.PredictedLabel));
        // The unit is w·x + b: integer weights, since η = 1 and the inputs are 0/1.
        var w = Fixtures.Weights(model);
        Assert.All(w["body.weight"].Append(w["body.bias"][0]), v => Assert.Equal(Math.Round(v), v));
    }

    private sealed class PerceptronPrediction
    {
        public float Score { get; set; }
        public bool PredictedLabel { get; set; }
    }

    [Fact]
    public void HuberRegressionLearns()
    {
        var ml = new MLContext(seed: 1);
        var o = new MlpTrainer.Options { Epochs = 8, Seed = Fixtures.Seed(1), Loss = DeepLoss.Huber, HiddenLayers = [64] };
        using var model = ml.Deep().Mlp(o).Fit(Fixtures.DigitsRegression(ml, "train"));
        var m = ml.Regression.Evaluate(model.Transform(Fixtures.DigitsRegression(ml, "test")));
        _out.WriteLine($"Huber: RMSE {m.RootMeanSquaredError:F3}, R² {m.RSquared:F3}");
        Assert.True(Fixtures.Quality("FamilyTests.HuberRegressionLearns: m.RSquared", m.RSquared) > 0.7);
        var bad = new MlpTrainer.Options { Loss = DeepLoss.CrossEntropy };
        Assert.Throws<ArgumentException>(() => ml.Deep().Mlp(bad).Fit(Fixtures.DigitsRegression(ml, "train")));
    }

    private sealed class SparseRow
    {
        [VectorType(64)] public VBuffer<float> Features { get; set; }
        public bool Label { get; set; }
    }

    [Fact]
    public void SparseAndDenseFeaturesTrainIdentically()
    {
        var ml = new MLContext();
        var dense = ml.Data.CreateEnumerable<Fixtures.BinaryRow>(Fixtures.DigitsBinary(ml, "train"), false).ToList();
        var sparse = dense.Select(r =>
        {
            var idx = Enumerable.Range(0, 64).Where(i => r.Features[i] != 0).ToArray();
            return new SparseRow { Features = new VBuffer<float>(64, idx.Length, idx.Select(i => r.Features[i]).ToArray(), idx), Label = r.Label };
        }).ToList();
        Assert.Contains(sparse, r => !r.Features.IsDense);
        using var a = ml.Deep().Mlp(Fixtures.QuickMlp(2)).Fit(ml.Data.LoadFromEnumerable(dense));
        using var b = ml.Deep().Mlp(Fixtures.QuickMlp(2)).Fit(ml.Data.LoadFromEnumerable(sparse));
        Assert.Equal(Fixtures.Weights(a)["body.output.weight"], Fixtures.Weights(b)["body.output.weight"]);
    }

    [Fact]
    public void DevicesResolveAndHonourMlContext()
    {
        Assert.Equal(DeepDevice.Cuda(1), DeepDevice.Parse("cuda:1"));
        Assert.Equal(DeepDevice.Cpu, DeepDevice.Parse("CPU"));
        Assert.Equal(DeepDevice.Auto, DeepDevice.FromContext(new MLContext()));
        Assert.Equal(DeepDevice.Cuda(0), DeepDevice.FromContext(new MLContext { GpuDeviceId = 0 }));
        Assert.Throws<FormatException>(() => DeepDevice.Parse("tpu"));
        Assert.Equal("cpu", DeepDevice.Cpu.Resolve().ToString());
        if (!TorchSharp.torch.cuda.is_available())
        {
            Assert.Equal("cpu", DeepDevice.Auto.Resolve().ToString());
            Assert.Equal("cpu", DeepDevice.Cuda(0).Resolve(fallbackToCpu: true).ToString());
            var ex = Assert.Throws<InvalidOperationException>(() => DeepDevice.Cuda(0).Resolve(fallbackToCpu: false));
            Assert.Contains("FallbackToCpu", ex.Message);
            // A context that asks for a GPU it cannot have, without fallback, fails before training.
            var ml = new MLContext { GpuDeviceId = 0, FallbackToCpu = false };
            Assert.Throws<InvalidOperationException>(() => ml.Deep().Mlp(Fixtures.QuickMlp(1)).Fit(Fixtures.DigitsBinary(ml, "train")));
        }
    }

    [Fact]
    public void DoctorDescribesTheRuntime()
    {
        var text = DeepRuntime.Describe();
        _out.WriteLine(text);
        Assert.Contains("TorchSharp version", text);
        Assert.Contains("Default device", text);
        var report = DeepRuntime.GetReport();
        Assert.True(report.NativeLibraryLoaded);
        Assert.True(report.CpuThreads > 0);
        Assert.Equal(report.CudaAvailable ? "cuda:0" : "cpu", report.DefaultDevice);
        if (!report.CudaAvailable) Assert.False(string.IsNullOrEmpty(report.CudaUnavailableReason));
    }
}

public class DatasetTests
{
    [Fact]
    public void FashionMnistLoadsLabelsAndPixelsFaithfully()
    {
        var dir = Datasets.FashionMnist.FindDirectory("t10k");
        Assert.NotNull(dir);
        var raw = Datasets.FashionMnist.Read(dir, "t10k", limit: 200);
        var ml = new MLContext();
        var data = Datasets.FashionMnist.Load(ml, dir, "t10k", limit: 200);
        var keys = data.GetColumn<uint>("Label").ToArray();
        Assert.Equal(raw.Select(i => i.Label + 1u), keys);                     // keys are 1-based, 0 means missing
        Assert.Equal(9, raw[0].Label);                                           // the first t10k image is an ankle boot
        var pixels = data.GetColumn<float[]>("Features").First();
        Assert.Equal(784, pixels.Length);
        Assert.Equal(raw[0].Pixels.Select(p => p / 255f), pixels);
        VBuffer<ReadOnlyMemory<char>> names = default;
        data.Schema["Label"].GetKeyValues(ref names);
        Assert.Equal("Ankle boot", names.GetValues()[9].ToString());
        var frame = Datasets.FashionMnist.LoadDataFrame(dir, "t10k", limit: 5);
        Assert.Equal(5, frame.Rows.Count);
        Assert.Equal("Ankle boot", frame["Label"][0]);
        Assert.Equal(785, frame.Columns.Count);
    }

    [Fact]
    public void NumberOfThreadsAppliesDuringFitAndIsRestored()
    {
        var ml = new MLContext();
        int before = TorchSharp.torch.get_num_threads();
        // Make the setting observable on a 1-core machine too: Fit must change it and put it back.
        int wanted = before == 1 ? 2 : 1;
        var seen = new ThreadsSeen();
        var o = Fixtures.QuickMlp(1);
        o.NumberOfThreads = wanted;
        o.Callbacks = [seen];
        using var model = ml.Deep().Mlp(o).Fit(Fixtures.DigitsBinary(ml, "train"));
        Assert.NotEmpty(seen.Threads);
        Assert.All(seen.Threads, t => Assert.Equal(wanted, t));
        Assert.Equal(before, TorchSharp.torch.get_num_threads());
    }

    /// <summary>Records torch's thread setting at every batch of a fit.</summary>
    private sealed class ThreadsSeen : Training.TrainingCallback
    {
        public List<int> Threads { get; } = [];
        public override void OnBatchEnd(Training.TrainingContext context) => Threads.Add(TorchSharp.torch.get_num_threads());
    }
}
