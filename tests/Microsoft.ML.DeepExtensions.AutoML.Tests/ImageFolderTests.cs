using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.AutoML;
using Microsoft.ML.DeepExtensions.Datasets;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>A folder of labelled images goes into the comparison as it is: pixels for every candidate, an image shape for the CNN.</summary>
public class ImageFolderTests(ITestOutputHelper output)
{
    private sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
        public string Category { get; set; } = "";
    }

    // 3 classes × 120 Fashion-MNIST images written as PNG files, one sub-folder per class; (relative path, class) per image.
    private static List<(string Path, string Class)> WriteImages(string root)
    {
        var images = FashionMnist.Read(FashionMnist.FindDirectory("t10k"), "t10k", limit: 2000);
        var written = new List<(string, string)>();
        foreach (int label in new[] { 0, 1, 8 })   // T-shirt/top, Trouser, Bag
            foreach (var (image, i) in images.Where(x => x.Label == label).Take(120).Select((x, i) => (x, i)))
            {
                string name = FashionMnist.ClassNames[label].Replace('/', '-');
                string dir = Directory.CreateDirectory(Path.Combine(root, name)).FullName;
                var rgba = image.Pixels.SelectMany(p => new[] { p, p, p, (byte)255 }).ToArray();
                using var png = MLImage.CreateFromPixels(FashionMnist.Side, FashionMnist.Side, MLPixelFormat.Rgba32, rgba);
                png.Save(Path.Combine(dir, $"{i:D3}.png"));
                written.Add(($"{name}/{i:D3}.png", name));
            }
        return written;
    }

    [Fact]
    public void A_csv_with_an_image_path_column_feeds_the_image_candidates()
    {
        string root = Directory.CreateTempSubdirectory("image-column-").FullName;
        var images = WriteImages(root);
        // A file like a labelling tool's export: an id, the image's path relative to the file, the class.
        string csv = Path.Combine(root, "labels.csv");
        File.WriteAllLines(csv, ["Id,Photo,Category", .. images.Select((x, i) => $"{i + 1},{x.Path},{x.Class}")]);

        var ml = new MLContext(1);
        var table = TabularData.Load(ml, csv, "Category", imageSize: 28, grayscaleImages: true);
        foreach (var c in table.Columns) output.WriteLine(c.ToString());
        Assert.Equal(["Photo"], table.ImageColumns);
        Assert.Equal(ColumnRole.Ignore, table.Columns.Single(c => c.Name == "Id").Role);
        Assert.Equal(new ImageShape(1, 28, 28), table.ImageShape);

        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Task = table.Task, ImageShape = table.ImageShape, Candidates = ["CNN", "SDCA"], Trials = 1, MaxEpochs = 4,
            NumberOfThreads = 1, LatencySamples = 20, TimeBudget = TimeSpan.FromSeconds(90), Ensemble = false,
        }).Run(ml.Data.ShuffleRows(table.Data, seed: 1));
        output.WriteLine(result.ToString());
        foreach (var e in result.Entries)
            Assert.True(e.Metric(Metrics.MicroAccuracy) > 0.8, $"{e.Name}: {e.Status} {e.Error} {e.Metric(Metrics.MicroAccuracy):F4}");   // chance 0.33

        // A missing image is named before anything trains.
        File.AppendAllLines(csv, ["999,Bag/missing.png,Bag"]);
        var gone = Assert.Throws<FileNotFoundException>(() => TabularData.Load(ml, csv, "Category"));
        Assert.Contains("Image column 'Photo': 'Bag/missing.png' was not found", gone.Message);
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public void A_folder_of_images_per_class_is_compared_and_the_best_model_scores_an_image_path()
    {
        string root = Directory.CreateTempSubdirectory("image-folder-").FullName;
        WriteImages(root);
        File.WriteAllText(Path.Combine(root, "README.txt"), "not an image");   // ignored: neither a folder nor an image

        var ml = new MLContext(1);
        var folder = ImageFolderData.Load(ml, root, size: 28, grayscale: true);
        output.WriteLine(folder.ToString());
        Assert.Equal(new ImageShape(1, 28, 28), folder.Shape);
        Assert.Equal(["Bag", "T-shirt-top", "Trouser"], folder.Classes.Select(c => c.Class));
        Assert.All(folder.Classes, c => Assert.Equal(120, c.Images));

        var pixels = folder.Featurizer.Fit(folder.Data).Transform(folder.Data);
        Assert.Equal(784, ((VectorDataViewType)pixels.Schema["Features"].Type).Size);
        Assert.Equal(360, pixels.GetColumn<float[]>("Features").Count(v => v.Max() <= 1 && v.Max() > 0));

        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = folder.Featurizer, ImageShape = folder.Shape, Candidates = ["CNN", "SDCA"], Trials = 1, MaxEpochs = 4,
            NumberOfThreads = 1, LatencySamples = 20, TimeBudget = TimeSpan.FromSeconds(90),
        }).Run(folder.Data);
        output.WriteLine(result.ToString());
        foreach (var e in result.Entries.Where(e => e.Kind != CandidateKind.Ensemble))
        {
            Assert.Equal(CandidateStatus.Completed, e.Status);
            Assert.True(e.Metric(Metrics.MicroAccuracy) > 0.8, $"{e.Name}: {e.Metric(Metrics.MicroAccuracy):F4}");   // 3 distinct classes; chance 0.33
        }

        // The best model reads an image path: decoding, resizing and pixels are part of it.
        var path = Directory.GetFiles(Path.Combine(root, "Trouser")).First();
        var probe = ml.Data.LoadFromEnumerable([new PathRow { ImagePath = path, Category = "Trouser" }]);
        var predicted = result.BestModel!.Transform(probe).GetColumn<uint>("PredictedLabel").Single();
        Assert.Equal(3u, predicted);   // keys in the classes' order: Bag, T-shirt-top, Trouser
        Assert.Contains("two sub-folders", Assert.Throws<InvalidDataException>(() => ImageFolderData.Load(ml, Path.Combine(root, "Bag"))).Message);
        Directory.Delete(root, recursive: true);
    }
}
