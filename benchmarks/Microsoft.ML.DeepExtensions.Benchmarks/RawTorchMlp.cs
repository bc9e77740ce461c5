using System.Diagnostics;
using Microsoft.ML.DeepExtensions.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// The baseline: the training loop a competent TorchSharp user writes by hand. The whole training set is loaded once
/// into two tensors; every epoch draws a permutation, gathers each batch with <c>index_select</c> and runs
/// forward / cross-entropy / backward / Adam step inside a per-batch dispose scope.
/// </summary>
internal static class RawTorchMlp
{
    /// <summary>One raw run.</summary>
    /// <param name="EpochSeconds">Wall-clock seconds of each epoch (training only).</param>
    /// <param name="EpochCpuSeconds">Process CPU seconds of each epoch (all threads).</param>
    /// <param name="LoadSeconds">Reading the IDX files and building the (standardised) tensors.</param>
    /// <param name="TotalSeconds">Load plus all epochs: what the pipeline's load + Fit is compared with.</param>
    /// <param name="FinalLoss">Mean training loss of the last epoch.</param>
    /// <param name="TestAccuracy">Argmax accuracy on the test split (not timed).</param>
    public sealed record Result(double[] EpochSeconds, double[] EpochCpuSeconds, double LoadSeconds, double TotalSeconds, double FinalLoss, double TestAccuracy);

    public static Result Run(MlpBenchmark.Settings s)
    {
        var total = Stopwatch.StartNew();

        // Data: two tensors, standardised once with the training statistics (what MlpTrainer does inside the model).
        var (x, y) = ToTensors(FashionMnist.Read(s.DataDirectory, "train", s.Limit));
        Tensor? mean = null, scale = null;
        if (s.Standardize && s.Model == "cnn")
        {
            // CnnTrainer standardises all pixels with one mean and deviation.
            mean = x.mean();
            scale = x.std(unbiased: false).reciprocal();
            var standardized = (x - mean) * scale;
            x.Dispose();
            x = standardized;
        }
        else if (s.Standardize)
        {
            mean = x.mean([0L]);
            using var std = x.std(0, unbiased: false);
            scale = where(std > 1e-8, std.reciprocal(), ones_like(std));
            var standardized = (x - mean) * scale;
            x.Dispose();
            x = standardized;
        }
        long n = x.shape[0];
        double loadSeconds = total.Elapsed.TotalSeconds;

        // Model: same layers, same order, same seed as MlpTrainer builds, so the initial weights are identical.
        torch.manual_seed(s.Seed);
        using var model = s.Model == "cnn" ? PipelineMlp.CnnSpec(s).Build() : nn.Sequential(
            ("dense1", nn.Linear(FashionMnist.Pixels, 256)),
            ("relu1", nn.ReLU()),
            ("dense2", nn.Linear(256, 128)),
            ("relu2", nn.ReLU()),
            ("output", nn.Linear(128, FashionMnist.ClassNames.Count)));
        using var optimizer = optim.Adam(model.parameters(), lr: MlpBenchmark.LearningRate);
        using var generator = new Generator((ulong)s.Seed);

        var epochSeconds = new double[s.Epochs];
        var epochCpu = new double[s.Epochs];
        double lastLoss = 0;
        model.train();
        for (int epoch = 0; epoch < s.Epochs; epoch++)
        {
            var watch = Stopwatch.StartNew();
            var cpu = Environment.CpuUsage.TotalTime;
            double lossSum = 0;
            using (var perm = randperm(n, generator: generator))
            {
                for (long start = 0; start < n; start += s.BatchSize)
                {
                    using var scope = NewDisposeScope();
                    long len = Math.Min(s.BatchSize, n - start);
                    var idx = perm.narrow(0, start, len);
                    var xb = x.index_select(0, idx);
                    var yb = y.index_select(0, idx);
                    optimizer.zero_grad();
                    var loss = nn.functional.cross_entropy(model.call(xb), yb);
                    loss.backward();
                    optimizer.step();
                    lossSum += loss.item<float>() * len;
                }
            }
            epochSeconds[epoch] = watch.Elapsed.TotalSeconds;
            epochCpu[epoch] = (Environment.CpuUsage.TotalTime - cpu).TotalSeconds;
            lastLoss = lossSum / n;
        }
        double totalSeconds = total.Elapsed.TotalSeconds;
        x.Dispose();
        y.Dispose();

        // Test accuracy (outside the timings).
        double accuracy;
        var (tx, ty) = ToTensors(FashionMnist.Read(s.DataDirectory, "t10k", s.TestLimit));
        using (tx)
        using (ty)
        using (no_grad())
        {
            model.eval();
            using var input = s.Standardize ? (tx - mean!) * scale! : tx.alias();
            using var logits = model.call(input);
            using var predicted = logits.argmax(1);
            accuracy = predicted.eq(ty).sum().item<long>() / (double)ty.shape[0];
        }
        mean?.Dispose();
        scale?.Dispose();
        return new Result(epochSeconds, epochCpu, loadSeconds, totalSeconds, lastLoss, accuracy);
    }

    /// <summary>Images as a [N, 784] float tensor in [0, 1] and labels as a [N] int64 tensor.</summary>
    private static (Tensor X, Tensor Y) ToTensors(IReadOnlyList<FashionMnist.Image> images)
    {
        int n = images.Count, d = FashionMnist.Pixels;
        var xs = new float[(long)n * d];
        var ys = new long[n];
        for (int i = 0; i < n; i++)
        {
            var pixels = images[i].Pixels;
            var row = xs.AsSpan(i * d, d);
            for (int j = 0; j < d; j++) row[j] = pixels[j] / 255f;
            ys[i] = images[i].Label;
        }
        return (tensor(xs, [n, d]), tensor(ys, [n]));
    }
}
