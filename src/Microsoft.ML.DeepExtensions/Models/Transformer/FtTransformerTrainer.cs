using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Trains an FT-Transformer (Gorishniy et al., 2021) on an ordinary tabular feature vector for binary, multiclass or
/// regression tasks. Each numeric slot becomes a token (x·w + b) and each one-hot categorical — the slots that
/// <c>OneHotEncoding → Concatenate</c> names "Column.Value" — becomes one token (an embedding of the category), read from
/// the feature column's slot names at Fit time; a CLS token is prepended and its encoded value predicts the label.
/// Create it with <c>mlContext.Deep().FtTransformer(...)</c>.
/// </summary>
public sealed class FtTransformerTrainer : DeepTrainerBase<FtTransformerTrainer.Options>
{
    /// <summary>Options for <see cref="FtTransformerTrainer"/>.</summary>
    public sealed class Options : EncoderOptions
    {
        /// <summary>
        /// Creates options with the FT-Transformer's defaults: 3 layers of 8 heads, attention dropout 0.2, 20 epochs,
        /// batch 256, AdamW (learning rate 5e-4, weight decay 1e-5), one warm-up epoch then cosine decay, gradient
        /// clipping at 1.
        /// </summary>
        public Options()
        {
            Layers = 3;
            Heads = 8;
            AttentionDropout = 0.2;
            Epochs = 20;
            BatchSize = 256;
            LearningRate = 5e-4;
            WeightDecay = 1e-5;
        }

        /// <summary>
        /// Group one-hot slots (named "Column.Value") into one token per column. Default true; false makes every slot its
        /// own numeric token.
        /// </summary>
        public bool GroupOneHotSlots { get; set; } = true;

        /// <summary>Explicit tokens (slot ranges of the feature vector); null derives them from the slot names.</summary>
        public FeatureToken[]? Tokens { get; set; }

        /// <inheritdoc />
        public override void Validate()
        {
            base.Validate();
        }
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().FtTransformer(options)</c>).</summary>
    public FtTransformerTrainer(MLContext context, Options options) : base(context, options, nameof(FtTransformerTrainer)) { }

    /// <inheritdoc />
    /// <summary>Tokens from the feature column's slot names (one per one-hot column, one per numeric slot), or one per slot.</summary>
    protected override NetworkSpec CreateSpec(SpecRequest request)
    {
        int inputSize = request.Input.Size;
        var tokens = TrainerOptions.Tokens
            ?? (TrainerOptions.GroupOneHotSlots && request.FeatureColumn is { } column && FeatureSlots.Names(column, inputSize) is { } names
                ? FeatureSlots.Groups(names)
                : FeatureSlots.PerSlot(inputSize));
        return Spec(tokens, inputSize, request.OutputSize);
    }

    private FtTransformerSpec Spec(FeatureToken[] tokens, int inputSize, int outputSize)
    {
        var o = TrainerOptions;
        return new FtTransformerSpec
        {
            InputSize = inputSize,
            OutputSize = outputSize,
            Tokens = tokens,
            Dimension = o.Dimension,
            EncoderLayers = o.Layers,
            Heads = o.Heads,
            FeedForwardSize = o.FeedForwardSize,
            Dropout = o.Dropout,
            AttentionDropout = o.AttentionDropout,
            LayerNorm = o.LayerNorm,
        };
    }
}
