using System.Net;
using System.Text;

namespace Microsoft.ML.DeepExtensions.Interactive;

/// <summary>
/// A grid of images (float pixel vectors, e.g. Fashion-MNIST rows or a CNN's inputs) with optional captions, shown in a
/// notebook as inline PNGs. Pixels are scaled from the grid's min..max (or 0..1) to 0..255.
/// </summary>
public sealed class ImageGrid
{
    /// <summary>Creates a grid of <paramref name="images"/>, each <paramref name="shape"/> (planar channels, row-major).</summary>
    public ImageGrid(IReadOnlyList<float[]> images, ImageShape shape, IReadOnlyList<string>? captions = null, int columns = 10, int scale = 3)
    {
        if (shape.Channels is not (1 or 3)) throw new ArgumentException($"ImageGrid shows 1- or 3-channel images; the shape is {shape}.", nameof(shape));
        for (int i = 0; i < images.Count; i++)
            if (images[i].Length != shape.Size) throw new ArgumentException($"Image {i} has {images[i].Length} values; shape {shape} needs {shape.Size}.", nameof(images));
        if (captions is not null && captions.Count != images.Count) throw new ArgumentException($"{captions.Count} captions for {images.Count} images.", nameof(captions));
        if (columns < 1 || scale < 1) throw new ArgumentException("columns and scale must be at least 1.");
        (Images, Shape, Captions, Columns, Scale) = (images, shape, captions, columns, scale);
    }

    /// <summary>The images.</summary>
    public IReadOnlyList<float[]> Images { get; }

    /// <summary>Their shape.</summary>
    public ImageShape Shape { get; }

    /// <summary>One caption per image (e.g. "T-shirt ✓"), or null.</summary>
    public IReadOnlyList<string>? Captions { get; }

    /// <summary>Images per row.</summary>
    public int Columns { get; }

    /// <summary>Display magnification (CSS pixels per image pixel).</summary>
    public int Scale { get; }

    /// <summary>The grid as HTML: a flex box of PNG data-URI images with captions.</summary>
    public string ToHtml()
    {
        float lo = Images.Count == 0 ? 0 : Math.Min(0, Images.Min(i => i.Min())), hi = Images.Count == 0 ? 1 : Math.Max(1, Images.Max(i => i.Max()));
        var sb = new StringBuilder($"<div style=\"display:grid;grid-template-columns:repeat({Columns},auto);gap:6px;justify-content:start;font:11px sans-serif\">");
        for (int i = 0; i < Images.Count; i++)
        {
            string png = Convert.ToBase64String(Png(Images[i], lo, hi));
            sb.Append($"<figure style=\"margin:0;text-align:center\"><img src=\"data:image/png;base64,{png}\" width=\"{Shape.Width * Scale}\" height=\"{Shape.Height * Scale}\" style=\"image-rendering:pixelated\"/>");
            if (Captions is not null) sb.Append($"<figcaption>{WebUtility.HtmlEncode(Captions[i])}</figcaption>");
            sb.Append("</figure>");
        }
        return sb.Append("</div>").ToString();
    }

    /// <summary>One image as PNG bytes (8-bit grayscale or RGB).</summary>
    public byte[] Png(float[] pixels, float lo = 0, float hi = 1) => PngImages.Grid([pixels], Shape, columns: 1, lo, hi, border: 0);
}
