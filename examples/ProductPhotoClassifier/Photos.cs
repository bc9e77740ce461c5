namespace ProductPhotoClassifier;

/// <summary>What the saved model reads: the path of one photo.</summary>
public sealed class PhotoInput
{
    public string ImagePath { get; set; } = "";
}

/// <summary>A training row: a photo and its category (the name of the sub-folder it is in).</summary>
public sealed class LabelledPhoto
{
    public string ImagePath { get; set; } = "";
    public string Category { get; set; } = "";
}

/// <summary>What the model returns: the most likely category and one probability per category (the Score column's slot names).</summary>
public sealed class PhotoPrediction
{
    public string PredictedCategory { get; set; } = "";
    public float[] Score { get; set; } = [];
}

/// <summary>Reads a folder with one sub-folder of photos per category.</summary>
public static class PhotoFolder
{
    /// <summary>The photo formats <c>train</c> picks up (decoded by ML.NET's LoadImages).</summary>
    public static readonly string[] Extensions = [".png", ".jpg", ".jpeg"];

    /// <summary>Every photo in the sub-folders of <paramref name="folder"/> (absolute paths), labelled with its sub-folder's name.</summary>
    public static List<LabelledPhoto> Scan(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"No folder '{folder}'.");
        var photos = new List<LabelledPhoto>();
        foreach (var dir in Directory.GetDirectories(folder).Order(StringComparer.Ordinal))
        {
            string category = Path.GetFileName(dir);
            photos.AddRange(Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
                .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                .Order(StringComparer.Ordinal)
                .Select(f => new LabelledPhoto { ImagePath = Path.GetFullPath(f), Category = category }));
        }
        int categories = photos.Select(p => p.Category).Distinct().Count();
        if (categories < 2)
            throw new ArgumentException(
                $"'{folder}' needs at least two sub-folders with photos ({string.Join("/", Extensions)}), one per category; found {categories}.");
        return photos;
    }

    /// <summary>A category name usable as a folder name ("T-shirt/top" -> "T-shirt-top").</summary>
    public static string SafeName(string category) =>
        string.Concat(category.Select(c => Path.GetInvalidFileNameChars().Contains(c) || c == '\\' ? '-' : c));
}
