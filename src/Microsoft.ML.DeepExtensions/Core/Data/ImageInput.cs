using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.Transforms.Image;

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
/// An image feature column — an <see cref="MLImage"/> column decoded to planar channels × height × width floats (0–255;
/// one channel is the luminance, three are red, green, blue, four add alpha) — or its pixels already extracted into a
/// vector of <see cref="ImageShape.Size"/> Single.
/// </summary>
/// <param name="Shape">The shape the network reads.</param>
[SerializedName("image")]
public sealed record ImageInput(ImageShape Shape) : FeatureInput
{
    /// <inheritdoc />
    [System.Text.Json.Serialization.JsonIgnore]
    public override int Size => Shape.Size;

    /// <summary>
    /// The image input for a feature column of <paramref name="type"/>: an MLImage column decoded to <paramref name="shape"/>
    /// (default: 3 channels at the column's fixed size), or a vector of its pixels (shape: <paramref name="shape"/>, else a
    /// square grayscale or RGB image). Throws naming <paramref name="column"/> when neither fits.
    /// </summary>
    internal static ImageInput For(DataViewType type, string column, ImageShape? shape)
    {
        if (type is ImageDataViewType img)
        {
            var decoded = shape ?? (img.Height > 0 && img.Width > 0 ? new ImageShape(3, img.Height, img.Width) : null)
                ?? throw new ArgumentException($"Feature column '{column}' holds images of varying size; set ImageShape (and ResizeImages to it).", column);
            var input = new ImageInput(decoded);
            input.Check(type, column);
            return input;
        }
        int size = VectorInput.For(type, column).Size;
        var pixels = shape ?? ImageShape.Infer(size) ?? throw new ArgumentException(
            $"Feature column '{column}' has {size} values, which is not a square grayscale or RGB image; set ImageShape (channels × height × width).", column);
        if (pixels.Size != size)
            throw new ArgumentException($"Feature column '{column}' has {size} values, but ImageShape {pixels} needs {pixels.Size}.", column);
        return new ImageInput(pixels);
    }

    /// <summary>What an image input reads, for error messages.</summary>
    internal const string Expected = "an image (MLImage) or a known-size vector of Single holding its pixels";

    /// <summary>Whether a column of this shape can be read as an image or as pixels (for <c>GetOutputSchema</c>).</summary>
    internal static bool Reads(SchemaShape.Column column) =>
        column.ItemType is ImageDataViewType && column.Kind == SchemaShape.Column.VectorKind.Scalar || VectorInput.Reads(column);

    internal override void Check(DataViewType type, string column)
    {
        if (type is not ImageDataViewType img)
        {
            new VectorInput(Size).Check(type, column);
            return;
        }
        if (img.Height > 0 && img.Width > 0 && (img.Height != Shape.Height || img.Width != Shape.Width))
            throw new ArgumentException($"Feature column '{column}' holds {img.Height}×{img.Width} images, but the network expects {Shape.Height}×{Shape.Width}; add ResizeImages.", column);
    }

    internal override IFeatureReader Reader(DataViewRow row, string column) => row.Schema[column].Type is ImageDataViewType
        ? new ImageReader(row.GetGetter<MLImage>(row.Schema[column]), column, Shape)
        : new VectorInput(Size).Reader(row, column);

    private sealed class ImageReader(ValueGetter<MLImage> getter, string column, ImageShape s) : IFeatureReader
    {
        private MLImage? _image;

        public void Read(Span<float> dst, long row)
        {
            getter(ref _image!);
            var image = _image;
            if (image is null)
                throw new InvalidOperationException($"Feature column '{column}' has no image in row {row} (the file could not be loaded).");
            if (image.Width != s.Width || image.Height != s.Height)
                throw new InvalidOperationException(
                    $"Feature column '{column}' has a {image.Height}×{image.Width} image in row {row}; the network expects {s.Height}×{s.Width}. Add ResizeImages.");
            if (s.Channels is not (1 or 3 or 4))
                throw new InvalidOperationException($"Feature column '{column}': images give 1 (gray), 3 (RGB) or 4 (RGBA) channels, not {s.Channels}.");
            if (image.PixelFormat is not (MLPixelFormat.Rgba32 or MLPixelFormat.Bgra32))
                throw new InvalidOperationException($"Feature column '{column}' has an image of pixel format {image.PixelFormat} in row {row}; expected 32-bit RGBA or BGRA.");
            var px = image.Pixels;
            bool bgra = image.PixelFormat == MLPixelFormat.Bgra32;
            int plane = s.Height * s.Width;
            for (int i = 0; i < plane; i++)
            {
                byte r = px[4 * i + (bgra ? 2 : 0)], g = px[4 * i + 1], b = px[4 * i + (bgra ? 0 : 2)];
                if (s.Channels == 1) dst[i] = 0.299f * r + 0.587f * g + 0.114f * b;
                else
                {
                    dst[i] = r; dst[plane + i] = g; dst[2 * plane + i] = b;
                    if (s.Channels == 4) dst[3 * plane + i] = px[4 * i + 3];
                }
            }
        }
    }
}
