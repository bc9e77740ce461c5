// Product photo classifier: a folder of labelled product photos -> model.zip -> the category of a new photo.
//
// The training folder holds one sub-folder per category, named after it, with the photos (png/jpg) inside:
//
//     photos/
//       Sneaker/    001.png 002.jpg ...
//       Bag/        a.png b.png ...
//
// `train` reads the photos with ML.NET's image transforms (LoadImages -> ResizeImages -> ExtractPixels), trains a
// convolutional network (mlContext.Deep().Cnn) on 80 % of them, evaluates it on the other 20 % and saves model.zip.
// `predict` loads model.zip in a fresh MLContext and prints the three most likely categories of one photo.
// `demo` (the default) writes 1,000 Fashion-MNIST images as PNG files into a temporary folder and runs both.
//
//   dotnet run -c Release --project examples/ProductPhotoClassifier                                    # demo
//   dotnet run -c Release --project examples/ProductPhotoClassifier -- train <folder> [--model model.zip] [--epochs N] [--size N] [--threads N]
//   dotnet run -c Release --project examples/ProductPhotoClassifier -- predict <model.zip> <image-file>
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.Transforms;
using ProductPhotoClassifier;

const string Usage = """
    Usage:
      ProductPhotoClassifier [demo] [--epochs N] [--threads N]
      ProductPhotoClassifier train <folder> [--model model.zip] [--epochs N] [--size N] [--threads N]
      ProductPhotoClassifier predict <model.zip> <image-file>

      <folder>   one sub-folder per category (its name is the label) holding .png/.jpg/.jpeg photos
      --model    where to save the model (default: model.zip)
      --epochs   training epochs (default: 10)
      --size     photos are resized to N×N pixels, RGB (default: 32)
      --threads  CPU threads for training (default: 1; more pays off only on idle cores)
    """;

try
{
    string command = args.Length == 0 ? "demo" : args[0].ToLowerInvariant();
    string[] positional = Positional(args.Skip(1).ToArray(), out var options);
    switch (command)
    {
        case "train" when positional.Length == 1:
            Train(positional[0], options.GetValueOrDefault("--model", "model.zip"),
                IntOption(options, "--epochs", 10), IntOption(options, "--size", 32), IntOption(options, "--threads", 1));
            return 0;
        case "predict" when positional.Length == 2 && options.Count == 0:
            Predict(positional[0], positional[1]);
            return 0;
        case "demo" when positional.Length == 0:
            Demo(IntOption(options, "--epochs", 10), IntOption(options, "--threads", 1));
            return 0;
        case "-h" or "--help" or "help":
            Console.WriteLine(Usage);
            return 0;
        default:
            Console.Error.WriteLine(Usage);
            return 1;
    }
}
catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or FormatException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

// ---- train: folder of labelled photos -> model.zip ---------------------------------------------------------------
static void Train(string folder, string modelPath, int epochs, int size, int threads)
{
    var watch = Stopwatch.StartNew();
    List<LabelledPhoto> photos = PhotoFolder.Scan(folder);
    var counts = photos.GroupBy(p => p.Category).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
    Console.WriteLine($"Found {photos.Count:N0} photos in {counts.Count} categories under {Path.GetFullPath(folder)}:");
    Console.WriteLine("  " + string.Join(", ", counts.Select(g => $"{g.Key} ({g.Count()})")));

    var ml = new MLContext(seed: 1);
    IDataView all = ml.Data.LoadFromEnumerable(photos);

    // The category name becomes a key (sorted by name, so a category keeps its index however the folder is listed).
    // Fitted separately, outside the saved model: at prediction time the model needs nothing but the photo's path.
    var labels = ml.Transforms.Conversion.MapValueToKey("Label", nameof(LabelledPhoto.Category),
        keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByValue).Fit(all);
    var split = ml.Data.TrainTestSplit(labels.Transform(all), testFraction: 0.2, seed: 1);
    Console.WriteLine($"Split 80/20: {Count(split.TrainSet):N0} photos to train on (10 % of them held out for validation), {Count(split.TestSet):N0} to test.");
    Console.WriteLine();

    var cnn = new CnnTrainer.Options
    {
        ImageShape = new ImageShape(3, size, size),   // ExtractPixels below: planar RGB, size × size
        Epochs = epochs,
        ValidationFraction = 0.1,                     // per-epoch validation loss and accuracy in the progress lines
        Verbose = true,                               // one line per epoch
        Seed = 1,
        // Torch's default is one thread per core; on a shared machine its spinning worker threads slow each other
        // down (one thread trained the demo 3x faster than two on a busy 2-core VM). --threads N raises it.
        NumberOfThreads = threads,
    };
    var pipeline = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: nameof(LabelledPhoto.ImagePath))
        .Append(ml.Transforms.ResizeImages("Image", size, size))     // keeps the aspect ratio, crops the centre
        .Append(ml.Transforms.ExtractPixels("Features", "Image", scaleImage: 1f / 255))
        .Append(ml.Deep().Cnn(cnn))
        .Append(ml.Transforms.Conversion.MapKeyToValue(nameof(PhotoPrediction.PredictedCategory), "PredictedLabel"));

    Console.WriteLine($"Training a CNN on {size}×{size} RGB photos, {epochs} epochs, {threads} thread{(threads == 1 ? "" : "s")} ...");
    var trainWatch = Stopwatch.StartNew();
    var model = pipeline.Fit(split.TrainSet);
    double trainSeconds = trainWatch.Elapsed.TotalSeconds;
    var network = model.OfType<DeepTransformer>().Single();
    Console.WriteLine($"Trained in {trainSeconds:F1} s; {network.Summary().TotalParameters:N0} parameters.");
    Console.WriteLine();

    var metrics = ml.MulticlassClassification.Evaluate(model.Transform(split.TestSet), topKPredictionCount: 3);
    Console.WriteLine($"Test set ({Count(split.TestSet):N0} photos not used in training):");
    Console.WriteLine($"  micro accuracy      {metrics.MicroAccuracy:P2}   (share of photos classified correctly)");
    Console.WriteLine($"  macro accuracy      {metrics.MacroAccuracy:P2}   (mean of per-category accuracies)");
    Console.WriteLine($"  log-loss            {metrics.LogLoss:F4}");
    Console.WriteLine($"  log-loss reduction  {metrics.LogLossReduction:F4}   (1 = perfect, 0 = no better than the category frequencies)");
    Console.WriteLine($"  top-3 accuracy      {metrics.TopKAccuracy:P2}   (the right category among the three most likely)");
    Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

    string fullPath = Path.GetFullPath(modelPath);
    Directory.CreateDirectory(Path.GetDirectoryName(fullPath)!);
    // The saved input schema is just the photo path: that is all `predict` passes in.
    var inputSchema = ml.Data.LoadFromEnumerable(Array.Empty<PhotoInput>()).Schema;
    ml.Model.Save(model, inputSchema, fullPath);
    Console.WriteLine($"Saved {fullPath} ({new FileInfo(fullPath).Length / 1024.0:N0} KB) in {watch.Elapsed.TotalSeconds:F0} s overall.");
}

// ---- predict: model.zip + one photo -> top-3 categories ----------------------------------------------------------
static void Predict(string modelPath, string imagePath)
{
    if (!File.Exists(modelPath)) throw new FileNotFoundException($"No model at '{modelPath}'. Train one first: train <folder> --model {modelPath}");
    if (!File.Exists(imagePath)) throw new FileNotFoundException($"No image at '{imagePath}'.");

    // A fresh context, as an application that only scores would have; Deep() registers the model loader with it.
    var ml = new MLContext();
    ITransformer model = ml.Deep().LoadModel(modelPath, out _);
    using var engine = ml.Model.CreatePredictionEngine<PhotoInput, PhotoPrediction>(model);
    PhotoPrediction prediction = engine.Predict(new PhotoInput { ImagePath = Path.GetFullPath(imagePath) });

    // Score holds one probability per category; its slot names are the category names.
    VBuffer<ReadOnlyMemory<char>> names = default;
    engine.OutputSchema["Score"].GetSlotNames(ref names);
    var top3 = prediction.Score.Select((p, i) => (Category: names.GetItemOrDefault(i).ToString(), Probability: p))
        .OrderByDescending(c => c.Probability).Take(3);

    Console.WriteLine($"{imagePath}: {prediction.PredictedCategory}");
    int rank = 1;
    foreach (var (category, probability) in top3)
        Console.WriteLine($"  {rank++}. {category,-16} {probability,7:P1}  {new string('#', (int)Math.Round(probability * 20))}".TrimEnd());
}

// ---- demo: Fashion-MNIST as a folder of product photos, then train and predict ------------------------------------
static void Demo(int epochs, int threads)
{
    var watch = Stopwatch.StartNew();
    string dataDir = FashionMnist.FindDirectory("t10k")
        ?? throw new FileNotFoundException("Fashion-MNIST was not found (expected data/fashion-mnist in the repository).");
    const int TrainCount = 1000, NewCount = 4;
    var images = FashionMnist.Read(dataDir, "t10k", limit: TrainCount + NewCount);

    string root = Directory.CreateTempSubdirectory("product-photos-").FullName;
    string photos = Path.Combine(root, "photos"), newPhotos = Path.Combine(root, "new");
    Directory.CreateDirectory(newPhotos);
    for (int i = 0; i < images.Count; i++)
    {
        string category = PhotoFolder.SafeName(FashionMnist.ClassNames[images[i].Label]);
        string path = i < TrainCount
            ? Path.Combine(Directory.CreateDirectory(Path.Combine(photos, category)).FullName, $"{i:D4}.png")
            : Path.Combine(newPhotos, $"{category.ToLowerInvariant().Replace(' ', '-')}-{i:D4}.png");
        // Grey 28×28 pixels written as RGBA PNG files, like any exported product photo.
        var rgba = images[i].Pixels.SelectMany(p => new[] { p, p, p, (byte)255 }).ToArray();
        using var image = MLImage.CreateFromPixels(FashionMnist.Side, FashionMnist.Side, MLPixelFormat.Rgba32, rgba);
        image.Save(path);
    }
    Console.WriteLine($"Demo: wrote {TrainCount:N0} Fashion-MNIST images as PNG files into {photos}/<category>/,");
    Console.WriteLine($"      and {NewCount} more (not used for training) into {newPhotos}.");
    Console.WriteLine();

    string modelPath = Path.Combine(root, "model.zip");
    Console.WriteLine($"$ ProductPhotoClassifier train {photos} --model {modelPath} --epochs {epochs} --size 28 --threads {threads}");
    Train(photos, modelPath, epochs, size: 28, threads);
    foreach (var file in Directory.GetFiles(newPhotos).Order(StringComparer.Ordinal))
    {
        Console.WriteLine();
        Console.WriteLine($"$ ProductPhotoClassifier predict {modelPath} {file}");
        Predict(modelPath, file);
    }
    Console.WriteLine();
    Console.WriteLine($"Demo done in {watch.Elapsed.TotalSeconds:F0} s. Its files stay in {root} (delete the folder when done).");
}

static long Count(IDataView data) => data.GetRowCount() ?? data.GetColumn<uint>("Label").LongCount();

// Splits "--name value" options from positional arguments.
static string[] Positional(string[] args, out Dictionary<string, string> options)
{
    options = new Dictionary<string, string>(StringComparer.Ordinal);
    var positional = new List<string>();
    for (int i = 0; i < args.Length; i++)
    {
        if (!args[i].StartsWith("--", StringComparison.Ordinal)) { positional.Add(args[i]); continue; }
        if (args[i] is not ("--model" or "--epochs" or "--size" or "--threads")) throw new ArgumentException($"unknown option '{args[i]}'.\n{Usage}");
        if (i + 1 >= args.Length) throw new ArgumentException($"option {args[i]} needs a value.");
        options[args[i]] = args[++i];
    }
    return positional.ToArray();
}

static int IntOption(Dictionary<string, string> options, string name, int fallback) =>
    !options.TryGetValue(name, out var text) ? fallback
    : int.TryParse(text, out int value) && value >= 1 ? value
    : throw new ArgumentException($"{name} must be a whole number of at least 1 (got '{text}').");
