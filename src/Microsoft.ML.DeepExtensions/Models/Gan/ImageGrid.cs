using System.IO.Compression;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>Lays images out in a grid and encodes it as PNG (8-bit grayscale or RGB), with no imaging dependency.</summary>
public static class ImageGrid
{
    /// <summary>
    /// A PNG of <paramref name="images"/> (each planar channels × height × width) in rows of <paramref name="columns"/>,
    /// one pixel of border between them; values from <paramref name="low"/> (black) to <paramref name="high"/> (white).
    /// </summary>
    public static byte[] ToPng(IReadOnlyList<float[]> images, ImageShape shape, int columns, float low = 0, float high = 255)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Channels is not (1 or 3)) throw new ArgumentException($"Image grids hold 1 (gray) or 3 (RGB) channels, not {shape.Channels}.", nameof(shape));
        if (columns < 1) throw new ArgumentOutOfRangeException(nameof(columns), columns, "At least one column.");
        if (!(high > low)) throw new ArgumentException($"The value range [{low}, {high}] is empty.", nameof(high));
        int rows = Math.Max(1, (images.Count + columns - 1) / columns);
        int c = shape.Channels, h = shape.Height, w = shape.Width;
        int width = columns * (w + 1) + 1, height = rows * (h + 1) + 1;
        var pixels = new byte[height * width * c];
        for (int n = 0; n < images.Count; n++)
        {
            var img = images[n];
            if (img.Length != shape.Size) throw new ArgumentException($"Image {n} has {img.Length} values; the shape needs {shape.Size}.", nameof(images));
            int top = 1 + n / columns * (h + 1), left = 1 + n % columns * (w + 1);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int ch = 0; ch < c; ch++)
                    {
                        float v = (img[ch * h * w + y * w + x] - low) / (high - low);
                        pixels[((top + y) * width + left + x) * c + ch] = (byte)Math.Clamp(MathF.Round(v * 255), 0, 255);
                    }
        }
        return Encode(pixels, width, height, c);
    }

    private static byte[] Encode(byte[] pixels, int width, int height, int channels)
    {
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        WriteBigEndian(header, 0, (uint)width);
        WriteBigEndian(header, 4, (uint)height);
        header[8] = 8;                                  // bit depth
        header[9] = (byte)(channels == 1 ? 0 : 2);      // gray or RGB
        Chunk(png, "IHDR", header);
        using var data = new MemoryStream();
        using (var z = new ZLibStream(data, CompressionLevel.Optimal, leaveOpen: true))
        {
            int stride = width * channels;
            for (int y = 0; y < height; y++)
            {
                z.WriteByte(0);                         // filter: none
                z.Write(pixels, y * stride, stride);
            }
        }
        Chunk(png, "IDAT", data.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] body)
    {
        var buf = new byte[4];
        WriteBigEndian(buf, 0, (uint)body.Length);
        s.Write(buf);
        var typed = new byte[4 + body.Length];
        System.Text.Encoding.ASCII.GetBytes(type, typed);
        body.CopyTo(typed, 4);
        s.Write(typed);
        WriteBigEndian(buf, 0, Crc32(typed));
        s.Write(buf);
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    private static uint Crc32(byte[] bytes)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in bytes) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    private static void WriteBigEndian(byte[] buf, int offset, uint v)
    {
        buf[offset] = (byte)(v >> 24); buf[offset + 1] = (byte)(v >> 16); buf[offset + 2] = (byte)(v >> 8); buf[offset + 3] = (byte)v;
    }
}
