using System.Reflection;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Persistence;
using Microsoft.ML.DeepExtensions.Training;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// A fitted deep network as an ML.NET transformer. It appends ML.NET's standard prediction columns —
/// binary: <c>Score</c> (logit), <c>Probability</c>, <c>PredictedLabel</c>; multiclass: <c>Score</c> (softmax vector with
/// slot names) and <c>PredictedLabel</c> (Key with the label's values); regression: <c>Score</c> — scores in batches,
/// works in a <see cref="PredictionEngine{TSrc,TDst}"/>, and saves with <c>mlContext.Model.Save</c>. As an
/// <see cref="ISingleFeaturePredictionTransformer{TModel}"/> it works with ML.NET's explainability tools, e.g.
/// <c>mlContext.BinaryClassification.PermutationFeatureImportance(model, data)</c> (its <see cref="Model"/> is the network's spec).
/// </summary>
public sealed class DeepTransformer : ISingleFeaturePredictionTransformer<NetworkSpec>, IBatchScorer, IDisposable
{
    internal const string LoaderSignature = "DeepExtensionsModel";
    private const string ModelSignature = "DEEPXNET";
    private const uint ModelVersion = 0x00010001;
    private static readonly byte[] Magic = "MLDEEPX"u8.ToArray();

    private readonly object _lock = new();
    private readonly DeepNetwork _network;
    private bool _disposed;

    internal DeepTransformer(ModelManifest manifest, DeepNetwork network, Device device)
    {
        Manifest = manifest;
        _network = network;
        Device = device;
        _network.to(device);
        _network.eval();
    }

    internal ModelManifest Manifest { get; }

    internal DeepNetwork Network => _network;

    /// <summary>The device the network scores on.</summary>
    public Device Device { get; }

    /// <summary>The task the model solves.</summary>
    public DeepTask Task => Manifest.Task;

    /// <summary>The network family ("MLP", "Perceptron", ...).</summary>
    public string Family => Manifest.Spec.Family;

    /// <summary>The network's spec (what the saved model stores).</summary>
    public NetworkSpec Spec => Manifest.Spec;

    /// <summary>The feature column the model reads.</summary>
    public string FeatureColumnName => Manifest.FeatureColumnName;

    /// <summary>
    /// The feature column's type as the network reads it: a vector of <see cref="NetworkSpec.InputSize"/> Single
    /// (permutation feature importance permutes its slots).
    /// </summary>
    public DataViewType FeatureColumnType => Manifest.Spec.InputSize == 1 ? NumberDataViewType.Single : new VectorDataViewType(NumberDataViewType.Single, Manifest.Spec.InputSize);

    /// <summary>The model: the network's spec (its weights live in this transformer).</summary>
    public NetworkSpec Model => Manifest.Spec;

    /// <summary>Per-epoch history of the fit that produced this model.</summary>
    public TrainingHistory History => Manifest.History;

    /// <summary>Library, TorchSharp and libtorch versions that trained (or last saved) the model.</summary>
    public VersionStamp Versions => Manifest.Versions;

    /// <summary>A Keras-like layer table of the network.</summary>
    public NetworkSummary Summary() => Manifest.Spec.Summary();

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(inputSchema).Schema;

    /// <inheritdoc />
    public IDataView Transform(IDataView input) => new ScoredDataView(this, input, OutputSchema(input.Schema));

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoringRowMapper(this, OutputSchema(inputSchema));

    private OutputColumns OutputSchema(DataViewSchema input)
    {
        Manifest.Spec.Input.Check(ColumnChecks.Find(input, Manifest.FeatureColumnName, "Feature").Type, Manifest.FeatureColumnName);
        return new OutputColumns(input, Manifest);
    }

    /// <summary>
    /// Scores <paramref name="rows"/> rows of flattened features (row-major) in one forward pass. Returns per row:
    /// the logit (binary), the softmax vector (multiclass) or the value (regression).
    /// </summary>
    internal float[] ScoreBatch(float[] features, int rows)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var x = torch.tensor(features.AsSpan(0, rows * Manifest.Spec.InputSize).ToArray(), [rows, Manifest.Spec.InputSize]);
        if (Device.type != DeviceType.CPU) x = x.to(Device);
        Tensor y;
        lock (_lock) y = Manifest.FeaturesColumnName is null ? _network.Predict(x) : _network.Embed(x);
        if (Manifest.Task == DeepTask.MulticlassClassification && Manifest.FeaturesColumnName is null)
            y = y.reshape(rows, Manifest.LabelWidth, -1).softmax(2).reshape(rows, -1);   // per step for a key-vector label
        return y.cpu().data<float>().ToArray();
    }

    /// <summary>
    /// A transformer that outputs this network's penultimate layer (the input of its output layer) as a float vector
    /// column, so a classic ML.NET trainer (LightGBM, SDCA, ...) can learn on the learned features. It holds its own
    /// copy of the weights and saves and loads like any deep model.
    /// </summary>
    /// <param name="outputColumnName">The vector column to add.</param>
    public DeepTransformer Featurizer(string outputColumnName = "DeepFeatures")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) Write(w);
        ms.Position = 0;
        var copy = Read(new BinaryReader(ms), Device);
        copy.Manifest.FeaturesColumnName = outputColumnName;
        copy.Manifest.FeaturesSize = copy._network.EmbeddingSize;
        return copy;
    }

    FeatureInput IBatchScorer.Input => Manifest.Spec.Input;

    float[] IBatchScorer.ScoreBatch(float[] features, int rows) => ScoreBatch(features, rows);

    /// <summary>
    /// Exports the model as ONNX to <paramref name="path"/> (written to a temporary file, then moved): the feature input,
    /// the standardisation and target scale around the network, the network, and ML.NET's output columns (Score,
    /// Probability, PredictedLabel) with the meaning this transformer gives them, for any number of rows per call (the
    /// first dimension of every input and output is the batch). Score it with ONNX Runtime anywhere, or in ML.NET with
    /// <c>mlContext.Transforms.ApplyOnnxModel</c>, which feeds one row at a time: there a per-row value (a binary Score)
    /// arrives as a vector of one.
    /// </summary>
    /// <exception cref="NotSupportedException">A layer has no ONNX form (the message names it).</exception>
    public void ExportOnnx(string path, OnnxExportOptions? options = null) => Onnx.OnnxExporter.Write(BuildOnnx(options), path);

    /// <summary>Exports the model as ONNX to a writable <paramref name="stream"/>; see <see cref="ExportOnnx(string, OnnxExportOptions?)"/>.</summary>
    public void ExportOnnx(Stream stream, OnnxExportOptions? options = null)
    {
        Onnx.OnnxExporter.CheckWritable(stream);
        Onnx.OnnxExporter.Write(BuildOnnx(options), stream);
    }

    /// <summary>
    /// Writes a Triton Inference Server / KServe model repository entry for this model:
    /// <c>repository/modelName/config.pbtxt</c> (inputs, outputs, <c>max_batch_size</c>, dynamic batching) and
    /// <c>repository/modelName/1/model.onnx</c>. Returns the model's folder.
    /// </summary>
    public string ExportOnnxModelRepository(string repository, string modelName, int maxBatchSize = 64) =>
        Onnx.OnnxExporter.WriteModelRepository(BuildOnnx(new OnnxExportOptions()), repository, modelName, maxBatchSize);

    internal global::Onnx.ModelProto BuildOnnx(OnnxExportOptions? options)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_lock) return Onnx.OnnxExporter.Build(Manifest, _network, options ?? new OnnxExportOptions());
    }

    /// <summary>Writes the model into an ML.NET model repository entry (called by <c>mlContext.Model.Save</c>).</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        MlNetBridge.Save(ctx, ModelSignature, ModelVersion, LoaderSignature, Write);

    /// <summary>Writes the self-describing model (magic, manifest JSON, weights) to <paramref name="writer"/>.</summary>
    internal void Write(BinaryWriter writer) => ModelEntry.Write(writer, Magic, Manifest, _network, _lock);

    /// <summary>Reads a model written by <see cref="Write"/>; throws <see cref="FormatException"/> for foreign or corrupt input.</summary>
    internal static DeepTransformer Read(BinaryReader reader, Device device)
    {
        var (manifest, network) = ModelEntry.Read(reader, Magic, "model", m => new DeepNetwork(m.Spec));
        return new DeepTransformer(manifest, network, device);
    }

    /// <summary>ML.NET's loader entry point (registered by <see cref="DeepCatalog"/>): <c>SignatureLoadModel</c>.</summary>
    internal static DeepTransformer Create(IHostEnvironment env, object modelLoadContext)
    {
        var reader = MlNetBridge.OpenForLoad(modelLoadContext, ModelSignature, ModelVersion, LoaderSignature);
        var device = DeepDevice.FromContext(env as MLContext).Resolve(fallbackToCpu: (env as MLContext)?.FallbackToCpu ?? true);
        return Read(reader, device);
    }

    internal static MethodInfo CreateMethod { get; } =
        typeof(DeepTransformer).GetMethod(nameof(Create), BindingFlags.NonPublic | BindingFlags.Static)!;

    /// <summary>Releases the network's native memory.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _network.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => Manifest.FeaturesColumnName is string f
        ? $"DeepTransformer({Family} featurizer → {f}[{Manifest.FeaturesSize}])"
        : $"DeepTransformer({Family}, {Task}, {Manifest.Spec.InputSize} inputs)";
}
