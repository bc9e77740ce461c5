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

    [Fact]
    public void A_folder_of_images_per_class_is_compared_and_the_best_model_scores_an_image_path()
    {
        // 3 classes × 120 Fashion-MNIST images written as PNG files, one sub-folder per class.
        var images = FashionMnist.Read(FashionMnist.FindDirectory("t10k"), "t10k", limit: 2000);
        string root = Directory.CreateTempSubdirectory("image-folder-").FullName;
        foreach (int label in new[] { 0, 1, 8 })   // T-shirt/top, Trouser, Bag
            foreach (var (image, i) in images.Where(x => x.Label == label).Take(120).Select((x, i) => (x, i)))
            {
                string dir = Directory.CreateDirectory(Path.Combine(root, FashionMnist.ClassNames[label].Replace('/', '-'))).FullName;
                var rgba = image.Pixels.SelectMany(p => new[] { p, p, p, (byte)255 }).ToArray();
                using var png = MLImage.CreateFromPixels(FashionMnist.Side, FashionMnist.Side, MLPixelFormat.Rgba32, rgba);
                png.Save(Path.Combine(dir, $"{i:D3}.png"));
            }
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
