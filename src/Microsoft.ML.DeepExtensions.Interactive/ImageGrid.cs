using System.IO.Compression;
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
    public byte[] Png(float[] pixels, float lo = 0, float hi = 1)
    {
        int w = Shape.Width, h = Shape.Height, c = Shape.Channels, plane = w * h;
        var raw = new byte[h * (1 + w * c)];
        for (int y = 0, o = 0; y < h; y++)
        {
            raw[o++] = 0;   // filter: none
            for (int x = 0; x < w; x++)
                for (int ch = 0; ch < c; ch++)
                    raw[o++] = (byte)Math.Clamp((pixels[ch * plane + y * w + x] - lo) / (hi - lo) * 255f, 0, 255);
        }
        using var ms = new MemoryStream();
        ms.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BigEndian(ihdr, 0, (uint)w);
        BigEndian(ihdr, 4, (uint)h);
        ihdr[8] = 8;                                 // bit depth
        ihdr[9] = (byte)(c == 1 ? 0 : 2);            // grayscale or truecolour
        Chunk(ms, "IHDR", ihdr);
        using (var z = new MemoryStream())
        {
            using (var zl = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) zl.Write(raw);
            Chunk(ms, "IDAT", z.ToArray());
        }
        Chunk(ms, "IEND", []);
        return ms.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        var head = new byte[8];
        BigEndian(head, 0, (uint)data.Length);
        Encoding.ASCII.GetBytes(type, 0, 4, head, 4);
        s.Write(head);
        s.Write(data);
        var crc = new byte[4];
        BigEndian(crc, 0, Crc32(head.AsSpan(4), data));
        s.Write(crc);
    }

    private static void BigEndian(byte[] b, int at, uint v) => (b[at], b[at + 1], b[at + 2], b[at + 3]) = ((byte)(v >> 24), (byte)(v >> 16), (byte)(v >> 8), (byte)v);

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc32(ReadOnlySpan<byte> type, byte[] data)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in type) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        foreach (byte b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }
}
