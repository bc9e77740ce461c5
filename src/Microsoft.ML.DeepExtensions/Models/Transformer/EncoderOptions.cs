using Microsoft.ML.DeepExtensions.Models;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// The encoder settings both transformer trainers share (<see cref="TransformerTrainer"/> for text,
/// <see cref="FtTransformerTrainer"/> for tabular rows). Both train with AdamW, one warm-up epoch then cosine decay, and
/// gradient clipping at 1 by default; each trainer's options set their own widths, depths and epochs.
/// </summary>
public abstract class EncoderOptions : DeepTrainerOptions
{
    /// <summary>Sets the defaults the transformer trainers share.</summary>
    protected EncoderOptions()
    {
        Optimizer = DeepOptimizer.AdamW;
        LearningRateSchedule = Training.LearningRateSchedule.Cosine(warmupEpochs: 1);
        GradientClipNorm = 1.0;
    }

    /// <summary>Token (model) width d. Default 64.</summary>
    public int Dimension { get; set; } = 64;

    /// <summary>Encoder layers.</summary>
    public int Layers { get; set; } = 2;

    /// <summary>Attention heads; must divide <see cref="Dimension"/>.</summary>
    public int Heads { get; set; } = 4;

    /// <summary>Hidden width of the feed-forward blocks. Default 128.</summary>
    public int FeedForwardSize { get; set; } = 128;

    /// <summary>Embedding, residual and feed-forward dropout. Default 0.1.</summary>
    public double Dropout { get; set; } = 0.1;

    /// <summary>Dropout on the attention weights.</summary>
    public double AttentionDropout { get; set; } = 0.1;

    /// <summary>Pre-norm (default; trains stably from scratch) or post-norm.</summary>
    public LayerNormPosition LayerNorm { get; set; } = LayerNormPosition.Pre;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        Check(Dimension >= 1, nameof(Dimension), Dimension, "at least 1");
        Check(Layers >= 1, nameof(Layers), Layers, "at least 1");
        Check(Heads >= 1 && Dimension % Heads == 0, nameof(Heads), Heads, $"at least 1 and a divisor of Dimension ({Dimension})");
        Check(FeedForwardSize >= 1, nameof(FeedForwardSize), FeedForwardSize, "at least 1");
        Check(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "in [0, 1)");
        Check(AttentionDropout is >= 0 and < 1, nameof(AttentionDropout), AttentionDropout, "in [0, 1)");
    }
}
