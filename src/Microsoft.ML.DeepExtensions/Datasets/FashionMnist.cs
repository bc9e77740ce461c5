using System.IO.Compression;
using Microsoft.Data.Analysis;

namespace Microsoft.ML.DeepExtensions.Datasets;

/// <summary>
/// Zalando's Fashion-MNIST (MIT licence) in its original IDX format (optionally gzip-compressed): 28×28 grayscale
/// images of 10 clothing classes. Loads as an <see cref="IDataView"/> with a <c>Label</c> Key column (class names as
/// key values), a <c>Features</c> vector of 784 pixel values in [0, 1] (row-major, 1×28×28) — or as a DataFrame.
/// </summary>
public static class FashionMnist
{
    /// <summary>Image height and width.</summary>
    public const int Side = 28;

    /// <summary>Pixels per image.</summary>
    public const int Pixels = Side * Side;

    /// <summary>The class names, in label order.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>Where the Debian package <c>dataset-fashion-mnist</c> installs the full set.</summary>
    public const string DebianDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>One image and its label.</summary>
    public sealed class Image
    {
        /// <summary>Class index 0–9 (see <see cref="ClassNames"/>).</summary>
        public byte Label { get; init; }

        /// <summary>784 pixels 0–255, row-major.</summary>
        public byte[] Pixels { get; init; } = [];
    }

    /// <summary>
    /// The folder holding <paramref name="split"/> ("train" or "t10k"): $FASHION_MNIST_DIR, the Debian package's folder,
    /// or the copy of the 10k test split embedded in the repository (data/fashion-mnist, found upwards from the app).
    /// Returns null when none has it.
    /// </summary>
    public static string? FindDirectory(string split = "t10k")
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("FASHION_MNIST_DIR") is { Length: > 0 } env) candidates.Add(env);
        candidates.Add(DebianDirectory);
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            candidates.Add(Path.Combine(dir.FullName, "data", "fashion-mnist"));
        return candidates.FirstOrDefault(d => File.Exists(FilePath(d, split, "images")) && File.Exists(FilePath(d, split, "labels")));
    }

    private static string FilePath(string dir, string split, string kind)
    {
        string stem = Path.Combine(dir, $"{split}-{kind}-idx{(kind == "images" ? 3 : 1)}-ubyte");
        return File.Exists(stem + ".gz") ? stem + ".gz" : stem;
    }

    /// <summary>Reads images and labels of <paramref name="split"/> ("train": 60,000, "t10k": 10,000) from <paramref name="directory"/>.</summary>
    /// <param name="directory">Folder with the IDX files (null: <see cref="FindDirectory"/>).</param>
    /// <param name="split">"train" or "t10k".</param>
    /// <param name="limit">Read at most this many images (the first ones).</param>
    public static IReadOnlyList<Image> Read(string? directory = null, string split = "t10k", int? limit = null)
    {
        directory ??= FindDirectory(split) ?? throw new FileNotFoundException(
            $"Fashion-MNIST '{split}' was not found. Install it with 'apt-get install dataset-fashion-mnist' ({DebianDirectory}) or set FASHION_MNIST_DIR.");
        var images = ReadIdx(FilePath(directory, split, "images"), 3, limit);
        var labels = ReadIdx(FilePath(directory, split, "labels"), 1, limit);
        if (images.Count != labels.Count)
            throw new InvalidDataException($"Fashion-MNIST '{split}' has {images.Count} images but {labels.Count} labels.");
        return images.Select((img, i) => new Image { Pixels = img, Label = labels[i][0] }).ToList();
    }

    private static List<byte[]> ReadIdx(string path, int dims, int? limit)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Fashion-MNIST file '{path}' does not exist.", path);
        using Stream file = File.OpenRead(path);
        using Stream s = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var r = new BinaryReader(s);
        int magic = ReadBigEndian(r);
        if (magic != 0x800 + dims)
            throw new InvalidDataException($"'{path}' is not an IDX file of unsigned bytes with {dims} dimension(s) (magic 0x{magic:X}).");
        int count = ReadBigEndian(r);
        int size = 1;
        for (int i = 1; i < dims; i++) size *= ReadBigEndian(r);
        int n = Math.Min(count, limit ?? count);
        var items = new List<byte[]>(n);
        for (int i = 0; i < n; i++)
        {
            var item = r.ReadBytes(size);
            if (item.Length != size) throw new InvalidDataException($"'{path}' is truncated at item {i} of {count}.");
            items.Add(item);
        }
        return items;
    }

    private static int ReadBigEndian(BinaryReader r)
    {
        var b = r.ReadBytes(4);
        if (b.Length != 4) throw new InvalidDataException("Truncated IDX header.");
        return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    }

    private sealed class Row
    {
        public uint Label { get; set; }
        [VectorType(Pixels)] public float[] Features { get; set; } = [];
    }

    /// <summary>
    /// Loads <paramref name="split"/> as an <see cref="IDataView"/>: <c>Label</c> (Key of 10, values = class names) and
    /// <c>Features</c> (784 floats in [0, 1], a 1×28×28 image row-major).
    /// </summary>
    public static IDataView Load(MLContext context, string? directory = null, string split = "t10k", int? limit = null)
    {
        var images = Read(directory, split, limit);
        // LoadFromEnumerable reads a Key-typed field as 0-based and adds 1 itself (0 stays reserved for "missing").
        var rows = images.Select(i => new Row { Label = i.Label, Features = i.Pixels.Select(p => p / 255f).ToArray() });
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Label)].ColumnType = new KeyDataViewType(typeof(uint), ClassNames.Count);
        var names = ClassNames.Select(n => n.AsMemory()).ToArray();
        schema[nameof(Row.Label)].AddAnnotation("KeyValues", names, new VectorDataViewType(TextDataViewType.Instance, names.Length));
        return context.Data.LoadFromEnumerable(rows.ToList(), schema);
    }

    /// <summary>Loads <paramref name="split"/> as a DataFrame: a <c>Label</c> string column (class name) and pixel columns p0..p783 (0–255).</summary>
    public static DataFrame LoadDataFrame(string? directory = null, string split = "t10k", int? limit = null)
    {
        var images = Read(directory, split, limit);
        var columns = new List<DataFrameColumn> { new StringDataFrameColumn("Label", images.Select(i => ClassNames[i.Label])) };
        for (int p = 0; p < Pixels; p++)
        {
            int q = p;
            columns.Add(new ByteDataFrameColumn($"p{p}", images.Select(i => i.Pixels[q])));
        }
        return new DataFrame(columns);
    }
}
