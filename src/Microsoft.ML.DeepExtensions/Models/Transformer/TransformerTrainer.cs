using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Trains an encoder-only transformer from scratch on token sequences — the key vector of ML.NET's
/// <c>TokenizeIntoWords → MapValueToKey</c> — for binary, multiclass or regression tasks: token embeddings plus
/// sinusoidal or learned positions, N encoder layers with key padding masks, CLS or mean pooling, then the output layer.
/// Create it with <c>mlContext.Deep().Transformer(...)</c>; for tabular feature vectors use <see cref="FtTransformerTrainer"/>.
/// </summary>
public sealed class TransformerTrainer : DeepTrainerBase<TransformerTrainer.Options>
{
    /// <summary>Options for <see cref="TransformerTrainer"/>.</summary>
    public sealed class Options : DeepTrainerOptions, ITokenSequenceOptions
    {
        /// <summary>
        /// Creates options with the text transformer's defaults: 8 epochs, batch 32, AdamW (learning rate 2e-3, weight
        /// decay 0.01), one warm-up epoch then cosine decay, gradient clipping at 1.
        /// </summary>
        public Options()
        {
            Epochs = 8;
            BatchSize = 32;
            Optimizer = DeepOptimizer.AdamW;
            LearningRate = 2e-3;
            WeightDecay = 0.01;
            LearningRateSchedule = Training.LearningRateSchedule.Cosine(warmupEpochs: 1);
            GradientClipNorm = 1.0;
        }

        /// <summary>Tokens read per row. Default 64.</summary>
        public int MaxSequenceLength { get; set; } = 64;

        /// <summary>Longer rows are truncated (default) or rejected.</summary>
        public SequenceOverflow SequenceOverflow { get; set; } = SequenceOverflow.Truncate;

        /// <summary>Token (model) dimension d. Default 64.</summary>
        public int Dimension { get; set; } = 64;

        /// <summary>Encoder layers. Default 2.</summary>
        public int Layers { get; set; } = 2;

        /// <summary>Attention heads; must divide <see cref="Dimension"/>. Default 4.</summary>
        public int Heads { get; set; } = 4;

        /// <summary>Hidden width of the feed-forward blocks. Default 128.</summary>
        public int FeedForwardSize { get; set; } = 128;

        /// <summary>Embedding, residual and feed-forward dropout. Default 0.1.</summary>
        public double Dropout { get; set; } = 0.1;

        /// <summary>Dropout on the attention weights. Default 0.1.</summary>
        public double AttentionDropout { get; set; } = 0.1;

        /// <summary>Pre-norm (default; trains stably from scratch) or post-norm.</summary>
        public LayerNormPosition LayerNorm { get; set; } = LayerNormPosition.Pre;

        /// <summary>Sinusoidal (default) or learned positions.</summary>
        public PositionalEncoding Positions { get; set; } = PositionalEncoding.Sinusoidal;

        /// <summary>CLS token (default) or mean over the real tokens.</summary>
        public SequencePooling Pooling { get; set; } = SequencePooling.Cls;

        /// <inheritdoc />
        public override void Validate()
        {
            base.Validate();
            Check(MaxSequenceLength >= 1, nameof(MaxSequenceLength), MaxSequenceLength, "at least 1");
            Check(Dimension >= 1, nameof(Dimension), Dimension, "at least 1");
            Check(Layers >= 1, nameof(Layers), Layers, "at least 1");
            Check(Heads >= 1 && Dimension % Heads == 0, nameof(Heads), Heads, $"at least 1 and a divisor of Dimension ({Dimension})");
            Check(FeedForwardSize >= 1, nameof(FeedForwardSize), FeedForwardSize, "at least 1");
            Check(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "in [0, 1)");
            Check(AttentionDropout is >= 0 and < 1, nameof(AttentionDropout), AttentionDropout, "in [0, 1)");
        }
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().Transformer(options)</c>).</summary>
    public TransformerTrainer(MLContext context, Options options) : base(context, options, nameof(TransformerTrainer)) { }

    /// <summary>The feature column must be a token sequence (a vector of keys); anything else is named before training.</summary>
    protected override NetworkSpec CreateSpec(DataViewSchema.Column featureColumn, int inputSize, int outputSize, DeepTask task) =>
        featureColumn.Type is VectorDataViewType { ItemType: KeyDataViewType }
            ? CreateSpec(inputSize, outputSize, task)
            : throw new ArgumentException(
                $"Feature column '{featureColumn.Name}' must be a token sequence — a vector of keys from TokenizeIntoWords → MapValueToKey; found {featureColumn.Type}. " +
                "For tabular float vectors use FtTransformerTrainer.", featureColumn.Name);

    /// <summary>
    /// The spec for a feature column of key vectors. Before training (for <c>Summary()</c>), <paramref name="inputSize"/> is
    /// the sequence length; the vocabulary is set from the data at Fit time (<see cref="NetworkSpec.InputTokens"/>).
    /// </summary>
    protected override NetworkSpec CreateSpec(int inputSize, int outputSize, DeepTask task)
    {
        var o = TrainerOptions;
        return new TransformerSpec
        {
            InputSize = inputSize,
            OutputSize = outputSize,
            Dimension = o.Dimension,
            EncoderLayers = o.Layers,
            Heads = o.Heads,
            FeedForwardSize = o.FeedForwardSize,
            Dropout = o.Dropout,
            AttentionDropout = o.AttentionDropout,
            LayerNorm = o.LayerNorm,
            Positions = o.Positions,
            Pooling = o.Pooling,
        };
    }
}
