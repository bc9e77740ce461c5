// Quick start for Microsoft.ML.DeepExtensions.
//
// Trains a multilayer perceptron (mlContext.Deep().Mlp) and ML.NET's classic multiclass trainers on the same
// Fashion-MNIST split, prints a side-by-side table, then saves the MLP, loads it into a new MLContext and
// classifies one image.
//
//   dotnet run -c Release --project examples/QuickStart                 # 10k images shipped in data/fashion-mnist (80/20 split)
//   dotnet run -c Release --project examples/QuickStart -- --full       # 60k train / 10k test from /usr/share/datasets/fashion-mnist
//   dotnet run -c Release --project examples/QuickStart -- --epochs 20
//   dotnet run -c Release --project examples/QuickStart -- --doctor     # runtime report: versions, native library, CUDA, device
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.Trainers;
using Microsoft.ML.Trainers.LightGbm;
using QuickStart;

if (args.Contains("--doctor"))
{
    Console.WriteLine(DeepRuntime.Describe());
    return 0;
}

var total = Stopwatch.StartNew();
bool full = args.Contains("--full");
int epochs = 10;
int epochsAt = Array.IndexOf(args, "--epochs");
if (epochsAt >= 0 && (epochsAt + 1 >= args.Length || !int.TryParse(args[epochsAt + 1], out epochs) || epochs < 1))
{
    Console.Error.WriteLine("Usage: QuickStart [--full] [--epochs N] [--doctor]   (N >= 1)");
    return 1;
}

var mlContext = new MLContext(seed: 1);

// Every trainer below trains on one thread (NumberOfThreads = 1), so the timings compare like with like. It also keeps
// libtorch and LightGBM fast on a busy machine: their worker threads spin while they wait for a core.

// ---- 1. Data: the same train/test split for every trainer -------------------------------------------------------
string testDir = FashionMnist.FindDirectory("t10k")
    ?? throw new FileNotFoundException("Fashion-MNIST was not found (expected data/fashion-mnist in the repository).");
IDataView train, test;
string? trainDir = full ? FashionMnist.FindDirectory("train") : null;
if (trainDir != null)
{
    train = FashionMnist.Load(mlContext, trainDir, "train");
    test = FashionMnist.Load(mlContext, testDir, "t10k");
    Console.WriteLine($"Data: Fashion-MNIST train split (60,000 images, {trainDir}) / test split (10,000 images)");
}
else
{
    if (full) Console.WriteLine($"--full: the 60k train split is not installed ({FashionMnist.DebianDirectory}); using the 10k split.");
    var split = mlContext.Data.TrainTestSplit(FashionMnist.Load(mlContext, testDir, "t10k"), testFraction: 0.2, seed: 1);
    (train, test) = (split.TrainSet, split.TestSet);
    Console.WriteLine($"Data: Fashion-MNIST 10k test split ({testDir}), 80% train / 20% test");
}
Console.WriteLine($"      {Count(train):N0} training rows, {Count(test):N0} test rows, 784 pixel features, 10 classes");
Console.WriteLine();

// ---- 2. Train and measure each trainer ---------------------------------------------------------------------------
string modelDir = Path.Combine(AppContext.BaseDirectory, "models");
Directory.CreateDirectory(modelDir);
var results = new List<Result>();

var mlp = mlContext.Deep().Mlp(new MlpTrainer.Options
{
    HiddenLayers = [256, 128],
    Epochs = epochs,
    Verbose = true,          // one line per epoch
    Seed = 1,
    NumberOfThreads = 1,
});
results.Add(TrainAndMeasure($"MLP 256-128, {epochs} epochs (Deep)", "mlp", mlp));

// 50 boosting rounds (the default is 100) keep the run short; raise it for the last half-point of accuracy.
results.Add(TrainAndMeasure("LightGBM, 50 rounds", "lightgbm",
    mlContext.MulticlassClassification.Trainers.LightGbm(new LightGbmMulticlassTrainer.Options
    {
        LabelColumnName = "Label",
        FeatureColumnName = "Features",
        NumberOfIterations = 50,
        NumberOfThreads = 1,
        Seed = 1,
    })));

results.Add(TrainAndMeasure("SDCA maximum entropy, 10 passes", "sdca",
    mlContext.MulticlassClassification.Trainers.SdcaMaximumEntropy(new SdcaMaximumEntropyMulticlassTrainer.Options
    {
        LabelColumnName = "Label",
        FeatureColumnName = "Features",
        MaximumNumberOfIterations = 10,
        NumberOfThreads = 1,
    })));

Console.WriteLine();
Console.WriteLine($"{"Model",-34} {"MicroAcc",9} {"MacroAcc",9} {"LogLoss",8} {"Train s",8} {"p50 ms",8} {"model.zip",10}");
Console.WriteLine(new string('-', 92));
foreach (var r in results)
    Console.WriteLine($"{r.Name,-34} {r.MicroAccuracy,9:P2} {r.MacroAccuracy,9:P2} {r.LogLoss,8:F4} {r.TrainSeconds,8:F1} {r.P50Milliseconds,8:F3} {FormatSize(r.ModelBytes),10}");
Console.WriteLine("All trained on one thread. p50 ms: median of 300 single-row PredictionEngine.Predict calls after warm-up.");
Console.WriteLine();

// ---- 3. Load the saved MLP in a NEW context and classify one image -----------------------------------------------
// This is all an application needs at prediction time: the .zip file and the two small classes in FashionModels.cs.
string mlpPath = results[0].ModelPath;
var appContext = new MLContext();
ITransformer loaded = appContext.Deep().LoadModel(mlpPath, out _);   // Deep() registers the loader with this context
using var engine = appContext.Model.CreatePredictionEngine<FashionImage, FashionPrediction>(loaded);

var sample = mlContext.Data.CreateEnumerable<LabelledImage>(test, reuseRowObject: false).First();
FashionPrediction prediction = engine.Predict(new FashionImage { Features = sample.Features });

VBuffer<ReadOnlyMemory<char>> classNames = default;
engine.OutputSchema["Score"].GetSlotNames(ref classNames);
int best = Array.IndexOf(prediction.Score, prediction.Score.Max());
Console.WriteLine($"Loaded {Path.GetFileName(mlpPath)} into a new MLContext; first test image:");
Console.WriteLine(Sketch(sample.Features));
Console.WriteLine($"Predicted: {classNames.GetItemOrDefault(best)} (probability {prediction.Score[best]:P1}); " +
                  $"actual: {FashionMnist.ClassNames[(int)sample.Label - 1]}");
Console.WriteLine($"Done in {total.Elapsed.TotalSeconds:F0} s. Models saved in {modelDir}");
return 0;

// Fits `estimator` on the training rows, then measures it on the test rows.
Result TrainAndMeasure(string name, string file, IEstimator<ITransformer> estimator)
{
    Console.WriteLine($"Training {name} ...");
    var watch = Stopwatch.StartNew();
    ITransformer model = estimator.Fit(train);
    double trainSeconds = watch.Elapsed.TotalSeconds;

    var metrics = mlContext.MulticlassClassification.Evaluate(model.Transform(test));

    string path = Path.Combine(modelDir, $"fashion-{file}.zip");
    mlContext.Model.Save(model, train.Schema, path);

    using var predictor = mlContext.Model.CreatePredictionEngine<FashionImage, FashionPrediction>(model);
    var images = mlContext.Data.CreateEnumerable<FashionImage>(test, reuseRowObject: false).Take(300).ToList();
    foreach (var image in images.Take(30)) predictor.Predict(image);   // warm-up
    var times = new List<double>();
    foreach (var image in images)
    {
        long start = Stopwatch.GetTimestamp();
        predictor.Predict(image);
        times.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }
    times.Sort();

    Console.WriteLine($"  {trainSeconds:F1} s, test micro-accuracy {metrics.MicroAccuracy:P2}");
    return new Result(name, metrics.MicroAccuracy, metrics.MacroAccuracy, metrics.LogLoss, trainSeconds,
        times[times.Count / 2], new FileInfo(path).Length, path);
}

long Count(IDataView data) => data.GetRowCount() ?? data.GetColumn<uint>("Label").LongCount();

static string FormatSize(long bytes) => bytes >= 1 << 20 ? $"{bytes / 1048576.0:F1} MB" : $"{bytes / 1024.0:F0} KB";

// A 28×14 text picture of an image (two pixel rows per text row).
static string Sketch(float[] pixels)
{
    const string shades = " .:-=+*#%@";
    var lines = new List<string>();
    for (int y = 0; y < 28; y += 2)
        lines.Add("    " + new string(Enumerable.Range(0, 28)
            .Select(x => shades[(int)(Math.Max(pixels[y * 28 + x], pixels[(y + 1) * 28 + x]) * (shades.Length - 1))]).ToArray()));
    return string.Join(Environment.NewLine, lines);
}

record Result(string Name, double MicroAccuracy, double MacroAccuracy, double LogLoss, double TrainSeconds,
    double P50Milliseconds, long ModelBytes, string ModelPath);

// A test row with its label (Label is a key: 1..10).
sealed class LabelledImage
{
    public uint Label { get; set; }
    [VectorType(784)] public float[] Features { get; set; } = [];
}
