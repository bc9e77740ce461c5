using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>Small helpers shared by tests.</summary>
public static class Fixtures
{
    /// <summary>optdigits train/test featurised (Key label, 64 features) — small and quick, real data.</summary>
    public static (IDataView Train, IDataView Test) Digits(MLContext ml)
    {
        var featurizer = TestData.DigitsFeaturizer(ml).Fit(TestData.Digits(ml, "train"));
        return (featurizer.Transform(TestData.Digits(ml, "train")), featurizer.Transform(TestData.Digits(ml, "test")));
    }

    /// <summary>Binary task on optdigits: is the digit ≥ 5 (Boolean label)?</summary>
    public static IDataView DigitsBinary(MLContext ml, string split) =>
        ml.Data.LoadFromEnumerable(
            ml.Data.CreateEnumerable<TestData.DigitRow>(TestData.Digits(ml, split), reuseRowObject: false)
                .Select(r => new BinaryRow { Features = r.Pixels, Label = r.Digit >= 5 }));

    /// <summary>Regression on optdigits: predict the digit's value from its pixels (a real, if odd, target).</summary>
    public static IDataView DigitsRegression(MLContext ml, string split) =>
        ml.Data.LoadFromEnumerable(
            ml.Data.CreateEnumerable<TestData.DigitRow>(TestData.Digits(ml, split), reuseRowObject: false)
                .Select(r => new RegressionRow { Features = r.Pixels, Label = r.Digit }));

    public sealed class BinaryRow
    {
        [VectorType(64)] public float[] Features { get; set; }
        public bool Label { get; set; }
    }

    public sealed class RegressionRow
    {
        [VectorType(64)] public float[] Features { get; set; }
        public float Label { get; set; }
    }

    public sealed class MulticlassPrediction
    {
        public uint PredictedLabel { get; set; }
        public float[] Score { get; set; }
    }

    public sealed class BinaryPrediction
    {
        public bool PredictedLabel { get; set; }
        public float Score { get; set; }
        public float Probability { get; set; }
    }

    /// <summary>Quick MLP options for unit tests (few epochs, fixed seed).</summary>
    public static MlpTrainer.Options QuickMlp(int epochs = 3) => new() { Epochs = epochs, Seed = Seed(7), HiddenLayers = [32], BatchSize = 64 };

    /// <summary>All parameters and buffers of a fitted model as float arrays.</summary>
    public static Dictionary<string, float[]> Weights(DeepTransformer model) => Weights(model.Network);

    /// <summary>All parameters and buffers of a module as float arrays.</summary>
    public static Dictionary<string, float[]> Weights(TorchSharp.torch.nn.Module module) =>
        module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.cpu().to_type(TorchSharp.torch.ScalarType.Float32).data<float>().ToArray());

    private static readonly int SeedShift = int.TryParse(Environment.GetEnvironmentVariable("DEEPEXT_TEST_SEED_SHIFT"), out int shift) ? shift : 0;

    /// <summary>
    /// A quality test's seed: the one written in the test plus <c>DEEPEXT_TEST_SEED_SHIFT</c> (0 unless set), so the
    /// quality tests can be rerun with other seeds to check that each threshold holds with a margin (libtorch picks
    /// kernels per CPU, so a seeded result on one machine is one draw among many on another).
    /// </summary>
    public static int Seed(int seed) => seed + SeedShift;

    /// <summary>
    /// A quality test's measured value, returned for its assertion and appended to the file named by
    /// <c>DEEPEXT_QUALITY_LOG</c> (when set) as "name, seed shift, value".
    /// </summary>
    public static double Quality(string name, double value)
    {
        if (Environment.GetEnvironmentVariable("DEEPEXT_QUALITY_LOG") is { Length: > 0 } log)
            lock (QualityLogLock) File.AppendAllText(log, FormattableString.Invariant($"{name}\t{SeedShift}\t{value:G6}\n"));
        return value;
    }

    private static readonly object QualityLogLock = new();

    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "deepext-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
