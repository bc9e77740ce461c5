using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Trains a vision transformer (ViT) from scratch on images for binary, multiclass or regression tasks: P×P patches
/// become tokens, learned positions are added, N encoder layers attend across patches, and the mean over patches (or a
/// [CLS] token) feeds the output layer. It reads the same image inputs as <see cref="CnnTrainer"/> (an MLImage column, or
/// a pixel vector with an <see cref="Options.ImageShape"/>). Small data sets favour small patches, augmentation and more
/// epochs, which the defaults provide. Create it with <c>mlContext.Deep().Vit(...)</c>; read the attention over patches
/// with <see cref="TransformerAttentionExtensions.AttentionWeights"/>.
/// </summary>
public sealed class VitTrainer : DeepTrainerBase<VitTrainer.Options>
{
    /// <summary>Options for <see cref="VitTrainer"/>.</summary>
    public sealed class Options : EncoderOptions
    {
        /// <summary>
        /// Creates options with the ViT's defaults: 4×4 patches, 6 pre-norm layers of width 64 with 4 heads, mean pooling,
        /// random shifts of up to 2 pixels, 10 epochs of batch 128 with AdamW (learning rate 1e-3, weight decay 0.05),
        /// one warm-up epoch then cosine decay, gradient clipping at 1.
        /// </summary>
        public Options()
        {
            Epochs = 10;
            Layers = 6;
            AttentionDropout = 0;
            WeightDecay = 0.05;
        }

        /// <summary>Channels × height × width of each image; null infers a square grayscale or RGB image from the vector size.</summary>
        public ImageShape? ImageShape { get; set; }

        /// <summary>The vector is channel-interleaved (height × width × channels), as ExtractPixels writes with <c>interleavePixelColors: true</c>.</summary>
        public bool Interleaved { get; set; }

        /// <summary>Side of the square patches; must divide the image's height and width. Default 4 (49 patches of a 28×28 image).</summary>
        public int PatchSize { get; set; } = 4;

        /// <summary>Mean over the patches (default) or a [CLS] token.</summary>
        public SequencePooling Pooling { get; set; } = SequencePooling.Mean;

        /// <summary>Training-time augmentation; off at scoring. Default: random shifts of up to 2 pixels. Null for none.</summary>
        public Augmentation? Augmentation { get; set; } = new() { MaxShift = 2 };

        /// <summary>
        /// Cut the patches from a small convolutional stem's feature map rather than from the pixels: the hybrid
        /// architecture of the ViT paper, in the form of Xiao et al. (2021), "Early convolutions help transformers see
        /// better" — 3×3 convolutions of stride 2 with batch norm and ReLU, one per factor 2 of the patch side (two for
        /// 4×4 patches: d/2 then d channels), then the patch embedding. The token count is unchanged; the locality it adds
        /// makes the transformer learn much faster on small data. Default false (the plain ViT).
        /// </summary>
        public bool ConvolutionalStem { get; set; }

        /// <inheritdoc />
        public override void Validate()
        {
            base.Validate();
            Check(PatchSize >= 1, nameof(PatchSize), PatchSize, "at least 1");
            if (ImageShape is { } s && (s.Height % PatchSize != 0 || s.Width % PatchSize != 0))
                Check(false, nameof(PatchSize), PatchSize, $"a divisor of the image's height and width ({s.Height}×{s.Width})");
        }
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().Vit(options)</c>).</summary>
    public VitTrainer(MLContext context, Options options) : base(context, options, nameof(VitTrainer)) { }

    /// <summary>An image: an MLImage column, or a vector of its pixels (as <see cref="CnnTrainer"/> reads them).</summary>
    protected override FeatureInput InputFor(DataViewType type, string column) => ImageInput.For(type, column, TrainerOptions.ImageShape);

    /// <inheritdoc />
    protected override bool Reads(SchemaShape.Column feature) => ImageInput.Reads(feature);

    /// <inheritdoc />
    protected override string Expects => ImageInput.Expected;

    /// <summary>Pixels share one scale: standardise with one mean and deviation.</summary>
    protected override bool StandardizePerFeature => false;

    /// <inheritdoc />
    protected override NetworkSpec CreateSpec(SpecRequest request)
    {
        var o = TrainerOptions;
        var shape = ((ImageInput)request.Input).Shape;
        return new VitSpec
        {
            InputSize = shape.Size,
            OutputSize = request.OutputSize,
            Channels = shape.Channels,
            Height = shape.Height,
            Width = shape.Width,
            Interleaved = o.Interleaved,
            PatchSize = o.PatchSize,
            Dimension = o.Dimension,
            EncoderLayers = o.Layers,
            Heads = o.Heads,
            FeedForwardSize = o.FeedForwardSize,
            Dropout = o.Dropout,
            AttentionDropout = o.AttentionDropout,
            LayerNorm = o.LayerNorm,
            Pooling = o.Pooling,
            Augmentation = o.Augmentation,
            ConvolutionalStem = o.ConvolutionalStem,
        };
    }
}
