namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>
/// A folder of labelled images read for a comparison: one sub-folder per class (its name is the label), the images in
/// it (.png, .jpg, .jpeg, .bmp; nested folders too). The featurizer decodes each image with ML.NET's image transforms,
/// resizes it to <see cref="Shape"/> and writes its pixels to <c>Features</c> (planar, scaled to [0, 1]); the label
/// becomes the key column <c>Label</c>. <see cref="ComparisonOptions.ImageShape"/> = <see cref="Shape"/> lets the image
/// candidates (CNN, ViT, ResNet18) run beside the classic ones, which read the same pixels.
/// </summary>
public sealed class ImageFolderData
{
    private static readonly string[] Extensions = [".png", ".jpg", ".jpeg", ".bmp"];

    /// <summary>One row per image: <c>ImagePath</c> (absolute) and <c>Category</c> (its sub-folder's name).</summary>
    public required IDataView Data { get; init; }

    /// <summary>Image paths → <c>Features</c> (pixels) and <c>Category</c> → <c>Label</c> (keys in the classes' order); give it to <see cref="ComparisonOptions.Featurizer"/>.</summary>
    public required IEstimator<ITransformer> Featurizer { get; init; }

    /// <summary>Channels × height × width of the pixel vectors.</summary>
    public required ImageShape Shape { get; init; }

    /// <summary>The classes (sub-folder names) and their image counts, in order.</summary>
    public required IReadOnlyList<(string Class, int Images)> Classes { get; init; }

    /// <summary>One line describing what was read.</summary>
    public override string ToString() =>
        $"{Classes.Sum(c => c.Images):N0} images in {Classes.Count} classes ({string.Join(", ", Classes.Select(c => $"{c.Class} {c.Images:N0}"))}), read as {Shape.Channels}×{Shape.Height}×{Shape.Width}";

    /// <summary>Reads <paramref name="folder"/>; images are resized to <paramref name="size"/> × <paramref name="size"/>, in colour or gray.</summary>
    public static ImageFolderData Load(MLContext ml, string folder, int size = 32, bool grayscale = false)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Image folder '{folder}' was not found.");
        if (size < 4) throw new ArgumentException($"The image size must be at least 4 pixels; got {size}.", nameof(size));
        var rows = new List<ImageRow>();
        var classes = new List<(string, int)>();
        foreach (var dir in Directory.GetDirectories(folder).Order(StringComparer.Ordinal))
        {
            var images = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
                .Where(IsImagePath).Order(StringComparer.Ordinal).ToList();
            if (images.Count == 0) continue;
            string name = Path.GetFileName(dir);
            classes.Add((name, images.Count));
            rows.AddRange(images.Select(f => new ImageRow { ImagePath = Path.GetFullPath(f), Category = name }));
        }
        if (classes.Count < 2)
            throw new InvalidDataException(
                $"'{folder}' needs at least two sub-folders of images ({string.Join(", ", Extensions)}), one per class; found {classes.Count} with images.");
        var (pixels, shape) = Pixels(ml, "Features", nameof(ImageRow.ImagePath), imageFolder: null, size, grayscale);
        var featurizer = pixels
            .Append(ml.Transforms.Conversion.MapValueToKey("Label", nameof(ImageRow.Category), keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue));
        // Shuffled once (seeded), so a validation split takes images of every class.
        var data = ml.Data.ShuffleRows(ml.Data.LoadFromEnumerable(rows), seed: 1);
        return new ImageFolderData { Data = ml.Data.Cache(data), Featurizer = featurizer, Shape = shape, Classes = classes };
    }

    /// <summary>Whether <paramref name="path"/> names an image file this reader decodes (by its extension).</summary>
    internal static bool IsImagePath(string path) => Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>
    /// Image paths in <paramref name="pathColumn"/> (relative to <paramref name="imageFolder"/> unless absolute) → decoded,
    /// resized to <paramref name="size"/>², in gray or colour, planar pixels in [0, 1] in <paramref name="output"/>.
    /// </summary>
    internal static (IEstimator<ITransformer> Pixels, ImageShape Shape) Pixels(MLContext ml, string output, string pathColumn, string? imageFolder, int size, bool grayscale)
    {
        string image = $"__image_{output}";
        IEstimator<ITransformer> pixels = ml.Transforms.LoadImages(image, imageFolder, inputColumnName: pathColumn)
            .Append(ml.Transforms.ResizeImages(image, size, size));
        if (grayscale) pixels = pixels.Append(ml.Transforms.ConvertToGrayscale(image));
        pixels = pixels
            .Append(ml.Transforms.ExtractPixels(output, image, scaleImage: 1f / 255,
                colorsToExtract: grayscale ? Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Red : Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Rgb))
            .Append(ml.Transforms.DropColumns(image));
        return (pixels, new ImageShape(grayscale ? 1 : 3, size, size));
    }

    private sealed class ImageRow
    {
        public string ImagePath { get; set; } = "";
        public string Category { get; set; } = "";
    }
}
