using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Training;

/// <summary>The task's loss on raw network outputs and float labels (0/1, class index, or standardised target).</summary>
internal sealed class LossFunction : IDisposable
{
    private readonly DeepTask _task;
    private readonly DeepLoss _loss;
    private readonly Tensor? _classWeights;
    private readonly Tensor? _posWeight;

    public LossFunction(DeepTask task, DeepLoss loss, float[]? classWeights, Device device)
    {
        _task = task;
        _loss = loss == DeepLoss.Auto
            ? task switch { DeepTask.BinaryClassification => DeepLoss.BinaryCrossEntropy, DeepTask.MulticlassClassification => DeepLoss.CrossEntropy, _ => DeepLoss.MeanSquaredError }
            : loss;
        bool ok = task switch
        {
            DeepTask.BinaryClassification => _loss == DeepLoss.BinaryCrossEntropy,
            DeepTask.MulticlassClassification => _loss == DeepLoss.CrossEntropy,
            _ => _loss is DeepLoss.MeanSquaredError or DeepLoss.Huber,
        };
        if (!ok) throw new ArgumentException($"Loss {loss} does not fit task {task}.", "Loss");
        if (classWeights is not null)
        {
            if (task == DeepTask.BinaryClassification)
                _posWeight = tensor(new[] { classWeights[1] / Math.Max(classWeights[0], 1e-12f) }, device: device);
            else if (task == DeepTask.MulticlassClassification)
                _classWeights = tensor(classWeights, device: device);
        }
    }

    /// <summary>Mean loss of a batch. <paramref name="output"/> is [B, outputs]; <paramref name="y"/> is [B] (or [B, outputs] for a vector regression label).</summary>
    public Tensor Compute(Tensor output, Tensor y) => _loss switch
    {
        DeepLoss.BinaryCrossEntropy => nn.functional.binary_cross_entropy_with_logits(output.reshape(-1), y, pos_weights: _posWeight),
        // One class per step (y [B, T]): output [B, T·K] is read as B·T rows of K; unlabelled steps (−1) are ignored.
        DeepLoss.CrossEntropy when y.dim() == 2 => nn.functional.cross_entropy(output.reshape(-1, output.shape[1] / y.shape[1]),
            y.reshape(-1).to_type(ScalarType.Int64), weight: _classWeights, ignore_index: (long)Data.FeatureReader.NoClass),
        DeepLoss.CrossEntropy => nn.functional.cross_entropy(output, y.to_type(ScalarType.Int64), weight: _classWeights),
        DeepLoss.Huber => nn.functional.smooth_l1_loss(output.reshape(-1), y.reshape(-1)),
        _ => nn.functional.mse_loss(output.reshape(-1), y.reshape(-1)),
    };

    public void Dispose()
    {
        _classWeights?.Dispose();
        _posWeight?.Dispose();
    }
}
