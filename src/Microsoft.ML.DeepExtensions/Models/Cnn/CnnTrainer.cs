using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;

namespace Microsoft.ML.DeepExtensions;

/// <summary>An image's shape: channels × height × width.</summary>
/// <param name="Channels">1 (grayscale) or 3 (colour), or any count.</param>
/// <param name="Height">Rows of pixels.</param>
/// <param name="Width">Columns of pixels.</param>
public sealed record ImageShape(int Channels, int Height, int Width)
{
    /// <summary>Values in the flattened image.</summary>
    public int Size => Channels * Height * Width;

    /// <summary>Guesses a square grayscale (n = s²) or square RGB (n = 3s²) shape; null when neither fits.</summary>
    public static ImageShape? Infer(int size)
    {
        int s = (int)Math.Round(Math.Sqrt(size));
        if (s * s == size) return new ImageShape(1, s, s);
        int s3 = (int)Math.Round(Math.Sqrt(size / 3.0));
        return size % 3 == 0 && 3 * s3 * s3 == size ? new ImageShape(3, s3, s3) : null;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Channels}×{Height}×{Width}";
}

/// <summary>
/// Trains a convolutional network on images for binary, multiclass or regression tasks. The feature column is a float
/// vector holding each image — from ML.NET's <c>LoadImages → ResizeImages → ExtractPixels</c> (planar by default; set
/// <see cref="Options.Interleaved"/> for <c>interleavePixelColors: true</c>) or any vector with an
/// <see cref="Options.ImageShape"/> (e.g. 784 values as 1×28×28). Create it with <c>mlContext.Deep().Cnn(...)</c>.
/// </summary>
public sealed class CnnTrainer : DeepTrainerBase<CnnTrainer.Options>
{
    /// <summary>Options for <see cref="CnnTrainer"/>.</summary>
    public sealed class Options : DeepTrainerOptions
    {
        /// <summary>Creates options with the CNN's defaults (5 epochs, batch 128, Adam 1e-3).</summary>
        public Options() => Epochs = 5;

        /// <summary>Channels × height × width of each image; null infers a square grayscale or RGB image from the vector size.</summary>
        public ImageShape? ImageShape { get; set; }

        /// <summary>The vector is channel-interleaved (height × width × channels), as ExtractPixels writes with <c>interleavePixelColors: true</c>.</summary>
        public bool Interleaved { get; set; }

        /// <summary>
        /// Convolution blocks. Default: two blocks of 3×3 'same' convolutions (32 then 64 filters) with batch norm, ReLU
        /// and 2×2 max pooling.
        /// </summary>
        public ConvBlock[] ConvBlocks { get; set; } =
        [
            new() { Filters = 32, Kernel = 3, Padding = "same", BatchNorm = true, Pooling = Pooling.Max, PoolSize = 2 },
            new() { Filters = 64, Kernel = 3, Padding = "same", BatchNorm = true, Pooling = Pooling.Max, PoolSize = 2 },
        ];

        /// <summary>Dense layers after flattening. Default [128].</summary>
        public int[] DenseLayers { get; set; } = [128];

        /// <summary>Activation of the dense layers.</summary>
        public Activation DenseActivation { get; set; } = Activation.Relu;

        /// <summary>Dropout after each dense layer. Default 0.3.</summary>
        public double DenseDropout { get; set; } = 0.3;

        /// <summary>Training-time augmentation (random shifts, horizontal flips); off at scoring. Null for none.</summary>
        public Augmentation? Augmentation { get; set; }
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().Cnn(options)</c>).</summary>
    public CnnTrainer(MLContext context, Options options) : base(context, options, nameof(CnnTrainer)) { }

    /// <inheritdoc />
    protected override bool AcceptsImages => true;

    /// <summary>An MLImage column is decoded to <see cref="Options.ImageShape"/> (default: 3 channels at the column's fixed size).</summary>
    protected override ImageShape? ImageInput(DataViewType featureType) =>
        featureType is not Microsoft.ML.Transforms.Image.ImageDataViewType img ? null
        : TrainerOptions.ImageShape ?? (img.Height > 0 && img.Width > 0 ? new ImageShape(3, img.Height, img.Width) : null)
          ?? throw new ArgumentException($"Feature column '{TrainerOptions.FeatureColumnName}' holds images of varying size; set ImageShape (and ResizeImages to it).",
              TrainerOptions.FeatureColumnName);

    /// <summary>Pixels share one scale: standardise with one mean and deviation.</summary>
    protected override bool StandardizePerFeature => false;

    /// <inheritdoc />
    protected override NetworkSpec CreateSpec(int inputSize, int outputSize, DeepTask task)
    {
        var o = TrainerOptions;
        var shape = o.ImageShape ?? ImageShape.Infer(inputSize) ?? throw new ArgumentException(
            $"Feature column '{o.FeatureColumnName}' has {inputSize} values, which is not a square grayscale or RGB image; set ImageShape (channels × height × width).",
            o.FeatureColumnName);
        if (shape.Size != inputSize)
            throw new ArgumentException(
                $"Feature column '{o.FeatureColumnName}' has {inputSize} values, but ImageShape {shape} needs {shape.Size}.", o.FeatureColumnName);
        return new CnnSpec
        {
            InputSize = inputSize,
            OutputSize = outputSize,
            Channels = shape.Channels,
            Height = shape.Height,
            Width = shape.Width,
            Interleaved = o.Interleaved,
            ConvBlocks = o.ConvBlocks,
            DenseLayers = o.DenseLayers,
            DenseActivation = o.DenseActivation,
            DenseDropout = o.DenseDropout,
            Augmentation = o.Augmentation,
        };
    }
}
