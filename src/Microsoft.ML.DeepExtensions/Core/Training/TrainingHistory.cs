using System.Text;

namespace Microsoft.ML.DeepExtensions.Training;

/// <summary>What happened in one epoch (Keras' <c>History</c> row).</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="TrainLoss">Mean training loss over the epoch (for the perceptron: the fraction of mistakes).</param>
/// <param name="ValidationLoss">Mean validation loss, when there is validation data.</param>
/// <param name="ValidationMetric">Accuracy (classification) or RMSE (regression) on the validation data.</param>
/// <param name="MetricName">"accuracy" or "rmse".</param>
/// <param name="LearningRate">The learning rate used in this epoch.</param>
/// <param name="Seconds">Wall-clock seconds of the epoch, validation included.</param>
public sealed record EpochRecord(int Epoch, double TrainLoss, double? ValidationLoss, double? ValidationMetric, string MetricName,
    double LearningRate, double Seconds)
{
    /// <summary>Total epochs planned; set for progress reporting.</summary>
    public int TotalEpochs { get; init; }

    /// <summary>
    /// Named parts of the training loss, for families that optimise more than one objective (a GAN's "generator" and
    /// "discriminator" losses); null otherwise.
    /// </summary>
    public IReadOnlyDictionary<string, double>? Losses { get; init; }

    /// <inheritdoc />
    public override string ToString()
    {
        var sb = new StringBuilder($"Epoch {Epoch}/{TotalEpochs} - {Seconds:F1}s - loss: {TrainLoss:F4}");
        if (Losses is not null)
            foreach (var (name, value) in Losses) sb.Append($" - {name}_loss: {value:F4}");
        if (ValidationLoss is double vl) sb.Append($" - val_loss: {vl:F4}");
        if (ValidationMetric is double vm) sb.Append($" - val_{MetricName}: {vm:F4}");
        sb.Append($" - lr: {LearningRate:G3}");
        return sb.ToString();
    }
}

/// <summary>Why training ended.</summary>
public enum StopReason
{
    /// <summary>All epochs ran.</summary>
    Completed,
    /// <summary>Early stopping: the validation metric stopped improving.</summary>
    EarlyStopped,
    /// <summary>The perceptron made no mistakes in an epoch (converged).</summary>
    Converged,
    /// <summary>The cancellation token fired.</summary>
    Cancelled,
    /// <summary>A <see cref="TrainingCallback"/> called <see cref="TrainingContext.Stop"/>.</summary>
    Stopped,
}

/// <summary>Per-epoch history of a fit, exposed on the fitted transformer and stored with the model.</summary>
public sealed class TrainingHistory
{
    /// <summary>One record per completed epoch.</summary>
    public List<EpochRecord> Epochs { get; set; } = new();

    /// <summary>Why training ended.</summary>
    public StopReason StopReason { get; set; }

    /// <summary>The epoch whose weights the model holds (the best one when early stopping restored it).</summary>
    public int BestEpoch { get; set; }

    /// <summary>Total training seconds.</summary>
    public double TotalSeconds => Epochs.Sum(e => e.Seconds);

    /// <summary>A plain-text table of the epochs.</summary>
    public override string ToString() =>
        string.Join(Environment.NewLine, Epochs.Select(e => e.ToString())) + Environment.NewLine + $"Stopped: {StopReason}, weights of epoch {BestEpoch}";
}
