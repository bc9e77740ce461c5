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
    public sealed class Options : EncoderOptions, ITokenSequenceOptions
    {
        /// <summary>
        /// Creates options with the text transformer's defaults: 8 epochs, batch 32, AdamW (learning rate 2e-3, weight
        /// decay 0.01), one warm-up epoch then cosine decay, gradient clipping at 1.
        /// </summary>
        public Options()
        {
            Epochs = 8;
            BatchSize = 32;
            LearningRate = 2e-3;
            WeightDecay = 0.01;
        }

        /// <summary>Tokens read per row. Default 64.</summary>
        public int MaxSequenceLength { get; set; } = 64;

        /// <summary>Longer rows are truncated (default) or rejected.</summary>
        public SequenceOverflow SequenceOverflow { get; set; } = SequenceOverflow.Truncate;

        /// <summary>Sinusoidal (default) or learned positions.</summary>
        public PositionalEncoding Positions { get; set; } = PositionalEncoding.Sinusoidal;

        /// <summary>CLS token (default) or mean over the real tokens.</summary>
        public SequencePooling Pooling { get; set; } = SequencePooling.Cls;

        /// <inheritdoc />
        public override void Validate()
        {
            base.Validate();
            Check(MaxSequenceLength >= 1, nameof(MaxSequenceLength), MaxSequenceLength, "at least 1");
        }
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().Transformer(options)</c>).</summary>
    public TransformerTrainer(MLContext context, Options options) : base(context, options, nameof(TransformerTrainer)) { }

    /// <summary>A vector of keys is read as token ids (<see cref="Options.MaxSequenceLength"/>, <see cref="Options.SequenceOverflow"/>).</summary>
    protected override FeatureInput InputFor(DataViewType type, string column) =>
        TokenInput.For(type, column, TrainerOptions.MaxSequenceLength, TrainerOptions.SequenceOverflow) ?? base.InputFor(type, column);

    /// <inheritdoc />
    protected override bool Reads(SchemaShape.Column feature) => TokenInput.Reads(feature);

    /// <inheritdoc />
    protected override string Expects => "a token sequence (a vector of keys from TokenizeIntoWords → MapValueToKey)";

    /// <summary>
    /// The spec for a token sequence; the feature column must be one (anything else is named before training). Before
    /// training (for <c>Summary()</c>), the input size is the sequence length; the vocabulary comes from the data at Fit.
    /// </summary>
    protected override NetworkSpec CreateSpec(SpecRequest request)
    {
        if (request.FeatureColumn is { } column && request.Input is not TokenInput)
            throw new ArgumentException(
                $"Feature column '{column.Name}' must be a token sequence — a vector of keys from TokenizeIntoWords → MapValueToKey; found {column.Type}. " +
                "For tabular float vectors use FtTransformerTrainer.", column.Name);
        var o = TrainerOptions;
        return new TransformerSpec
        {
            InputSize = request.Input.Size,
            OutputSize = request.OutputSize,
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
