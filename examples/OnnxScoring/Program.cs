// Scores a Fashion-MNIST classifier exported to ONNX by Microsoft.ML.DeepExtensions (DeepTransformer.ExportOnnx) in a
// plain ML.NET app: Microsoft.ML + Microsoft.ML.OnnxTransformer + Microsoft.ML.OnnxRuntime, no TorchSharp.
//
//   dotnet run -c Release --project examples/OnnxScoring -- [model.onnx] [fashion-mnist folder]
//
// The model file defaults to fashion-mlp.onnx; the images to the 10,000-image test split shipped in data/fashion-mnist
// (found upwards from the current folder and from the app). Produce a model with
//   dotnet run -c Release --project benchmarks/Microsoft.ML.DeepExtensions.Benchmarks -- onnx --export-model fashion-mlp.onnx
using System.Diagnostics;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Transforms;

const int Pixels = 28 * 28;
string modelPath = args.Length > 0 ? args[0] : "fashion-mlp.onnx";
if (!File.Exists(modelPath))
{
    Console.Error.WriteLine($"Model '{Path.GetFullPath(modelPath)}' not found. Export one first, e.g.:");
    Console.Error.WriteLine("  dotnet run -c Release --project benchmarks/Microsoft.ML.DeepExtensions.Benchmarks -- onnx --export-model fashion-mlp.onnx");
    return 2;
}
string? dataDir = args.Length > 1 ? args[1] : FindData();
if (dataDir is null)
{
    Console.Error.WriteLine("data/fashion-mnist (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) not found; pass the folder as the second argument.");
    return 2;
}

// What the exported file says about itself: its input, its task and the class names (PredictedLabel k is line k).
string[] classNames;
using (var session = new InferenceSession(modelPath))
{
    var meta = session.ModelMetadata.CustomMetadataMap;
    if (!session.InputMetadata.ContainsKey("Features") || session.InputMetadata.Count != 1)
    {
        Console.Error.WriteLine($"This app feeds one input named 'Features'; the model's inputs are: {string.Join(", ", session.InputMetadata.Keys)}.");
        return 2;
    }
    if (meta.TryGetValue("task", out var task) && task != "MulticlassClassification")
    {
        Console.Error.WriteLine($"The model solves {task}; this app evaluates a multiclass classifier.");
        return 2;
    }
    classNames = meta.TryGetValue("label_key_values", out var names)
        ? names.Split('\n')
        : ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
    Console.WriteLine($"Model: {Path.GetFullPath(modelPath)} ({new FileInfo(modelPath).Length / 1024} KB, {session.ModelMetadata.ProducerName}, "
        + $"graph '{session.ModelMetadata.GraphName}'), input Features {Shape(session.InputMetadata["Features"])}, "
        + $"outputs {string.Join(", ", session.OutputMetadata.Select(o => $"{o.Key} {Shape(o.Value)}"))}");
}

var rows = ReadFashionMnist(dataDir, "t10k");
Console.WriteLine($"Data:  {rows.Count:N0} images from {Path.GetFullPath(dataDir)}");

var ml = new MLContext(seed: 1);
var data = ml.Data.LoadFromEnumerable(rows);
// The model's PredictedLabel is 1 + the class index (an ML.NET key): map the digit 0..9 to keys 1..10 in value order.
var scoring = ml.Transforms.Conversion.MapValueToKey("Label", keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByValue)
    .Append(ml.Transforms.ApplyOnnxModel(modelPath));   // input "Features" -> outputs "Score" (softmax of 10), "PredictedLabel"
var clock = Stopwatch.StartNew();
var model = scoring.Fit(data);
var metrics = ml.MulticlassClassification.Evaluate(model.Transform(data));
Console.WriteLine($"Accuracy: micro {metrics.MicroAccuracy:P2}, macro {metrics.MacroAccuracy:P2}, log-loss {metrics.LogLoss:F4} "
    + $"({rows.Count:N0} rows through ApplyOnnxModel in {clock.Elapsed.TotalSeconds:F1} s)");

// One row through a PredictionEngine: only the ONNX transform (the label mapping needs a Label the app does not have).
var onnxOnly = ml.Transforms.ApplyOnnxModel(modelPath).Fit(data);
using var engine = ml.Model.CreatePredictionEngine<ImageInput, OnnxOutput>(onnxOnly);
var image = rows[0];
var prediction = engine.Predict(new ImageInput { Features = image.Features });
int predicted = (int)prediction.PredictedLabel[0] - 1;
Console.WriteLine($"First test image: predicted {classNames[predicted]} (probability {prediction.Score[predicted]:P1}); actual {classNames[image.Label]}");
return 0;

// data/fashion-mnist upwards from the current folder, then from the app's folder.
static string? FindData()
{
    foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        for (var dir = new DirectoryInfo(start); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "data", "fashion-mnist");
            if (File.Exists(Path.Combine(candidate, "t10k-images-idx3-ubyte.gz"))) return candidate;
        }
    return null;
}

// IDX files, gzip'd: big-endian int32 magic (0x803 images, 0x801 labels), counts and sizes, then one byte per pixel/label.
static List<ImageRow> ReadFashionMnist(string dir, string split)
{
    byte[][] images = ReadIdx(Path.Combine(dir, $"{split}-images-idx3-ubyte.gz"), 3);
    byte[][] labels = ReadIdx(Path.Combine(dir, $"{split}-labels-idx1-ubyte.gz"), 1);
    if (images.Length != labels.Length || images.Any(i => i.Length != Pixels))
        throw new InvalidDataException($"Expected as many 28×28 images as labels; got {images.Length} images and {labels.Length} labels.");
    return images.Select((img, i) => new ImageRow { Label = labels[i][0], Features = img.Select(p => p / 255f).ToArray() }).ToList();
}

static byte[][] ReadIdx(string path, int dims)
{
    using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
    using var r = new BinaryReader(gz);
    int BigEndian() { var b = r.ReadBytes(4); return b.Length == 4 ? (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3] : throw new InvalidDataException($"'{path}': truncated header."); }
    int magic = BigEndian();
    if (magic != 0x800 + dims) throw new InvalidDataException($"'{path}' is not an IDX file of bytes with {dims} dimension(s) (magic 0x{magic:X}).");
    int count = BigEndian(), size = 1;
    for (int d = 1; d < dims; d++) size *= BigEndian();
    var items = new byte[count][];
    for (int i = 0; i < count; i++)
        if ((items[i] = r.ReadBytes(size)).Length != size) throw new InvalidDataException($"'{path}' is truncated at item {i} of {count}.");
    return items;
}

static string Shape(NodeMetadata m) => $"{m.ElementDataType.ToString().ToLowerInvariant()} [{string.Join(", ", m.Dimensions.Select((d, i) => d < 0 ? (m.SymbolicDimensions[i] is { Length: > 0 } s ? s : "N") : d.ToString()))}]";

/// <summary>A test image: the class index 0–9 and 784 pixels in [0, 1] (row-major 28×28, as the model was trained).</summary>
internal sealed class ImageRow
{
    public uint Label { get; set; }
    [VectorType(28 * 28)] public float[] Features { get; set; } = [];
}

/// <summary>What the PredictionEngine feeds the model.</summary>
internal sealed class ImageInput
{
    [VectorType(28 * 28)] public float[] Features { get; set; } = [];
}

/// <summary>The model's outputs as ApplyOnnxModel delivers them one row at a time: Score [10], PredictedLabel [1] (1-based).</summary>
internal sealed class OnnxOutput
{
    public float[] Score { get; set; } = [];
    public uint[] PredictedLabel { get; set; } = [];
}
