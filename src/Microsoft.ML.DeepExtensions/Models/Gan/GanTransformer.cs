using System.Reflection;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Persistence;
using Microsoft.ML.DeepExtensions.Training;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// A fitted GAN. <see cref="Transform"/> appends <c>Score</c> (Single): the discriminator's score of each row, higher
/// meaning more like the training data — for a conditional GAN the highest score over the classes — so its negation is
/// an anomaly score. <see cref="Generate(int, int, int?)"/> returns synthetic rows as an <see cref="IDataView"/> with the
/// training feature column (and the label, when conditional). Saves with <c>mlContext.Model.Save</c> and scores in a
/// <see cref="PredictionEngine{TSrc,TDst}"/>.
/// </summary>
public sealed class GanTransformer : ITransformer, IBatchScorer, IDisposable
{
    internal const string LoaderSignature = "DeepExtensionsGan";
    private const string ModelSignature = "DEEPXGAN";
    private const uint ModelVersion = 0x00010001;
    private static readonly byte[] Magic = "MLDEEPG"u8.ToArray();

    private readonly object _lock = new();
    private readonly MLContext _context;
    private readonly GanNetwork _network;
    private bool _disposed;

    internal GanTransformer(MLContext context, ModelManifest manifest, GanNetwork network, Device device)
    {
        _context = context;
        Manifest = manifest;
        _network = network;
        Device = device;
        _network.to(device);
        _network.eval();
    }

    internal ModelManifest Manifest { get; }

    internal GanNetwork Network => _network;

    /// <summary>The device the networks run on.</summary>
    public Device Device { get; }

    /// <summary>The networks' spec (what the saved model stores).</summary>
    public GanSpec Spec => (GanSpec)Manifest.Spec;

    /// <summary>The feature column the model reads and generates.</summary>
    public string FeatureColumnName => Manifest.FeatureColumnName;

    /// <summary>The Key label column of a conditional GAN; null when unconditional.</summary>
    public string? LabelColumnName => IsConditional ? Manifest.LabelColumnName : null;

    /// <summary>Whether the GAN generates rows of a requested class.</summary>
    public bool IsConditional => Manifest.ClassCount > 0;

    /// <summary>The classes of a conditional GAN (the label's key values, or "0", "1", ...), in class-index order.</summary>
    public IReadOnlyList<string> ClassNames => Manifest.LabelKeyValues is { } kv && kv.Values.Length == Manifest.ClassCount
        ? kv.Values : Enumerable.Range(0, Manifest.ClassCount).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Per-epoch history; each record's <see cref="EpochRecord.Losses"/> holds "generator" and "discriminator".</summary>
    public TrainingHistory History => Manifest.History;

    /// <summary>Library, TorchSharp and libtorch versions that trained (or last saved) the model.</summary>
    public VersionStamp Versions => Manifest.Versions;

    /// <summary>A layer table of the generator and the discriminator.</summary>
    public NetworkSummary Summary() => Spec.Summary();

    /// <inheritdoc />
    public bool IsRowToRowMapper => true;

    FeatureInput IBatchScorer.Input => new VectorInput(Spec.InputSize);

    /// <inheritdoc />
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(inputSchema).Schema;

    /// <inheritdoc />
    public IDataView Transform(IDataView input) => new ScoredDataView(this, input, OutputSchema(input.Schema));

    /// <inheritdoc />
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoringRowMapper(this, OutputSchema(inputSchema));

    private OutputColumns OutputSchema(DataViewSchema input)
    {
        new VectorInput(Spec.InputSize).Check(ColumnChecks.Find(input, FeatureColumnName, "Feature").Type, FeatureColumnName);
        return new OutputColumns(input, Manifest);
    }

    float[] IBatchScorer.ScoreBatch(float[] features, int rows)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var x = torch.tensor(features.AsSpan(0, rows * Spec.InputSize).ToArray(), [rows, Spec.InputSize]).to(Device);
        Tensor score;
        lock (_lock) score = _network.Realness(x);
        return score.cpu().data<float>().ToArray();
    }

    /// <summary>
    /// Exports the discriminator as ONNX: input the feature column (float [N, size], raw units), output <c>Score</c> [N],
    /// how real each row looks — what <see cref="Transform"/> adds (for a conditional GAN the highest score over the classes).
    /// </summary>
    public void ExportOnnx(string path, OnnxExportOptions? options = null) => Onnx.OnnxExporter.Write(BuildOnnx(options, generator: false), path);

    /// <summary>
    /// Exports the generator as ONNX: inputs <c>Noise</c> (float [N, <see cref="GanSpec.LatentSize"/>], standard normal)
    /// and, for a conditional GAN, <c>Class</c> (int64 [N], 0-based, see <see cref="ClassNames"/>); output the feature
    /// column in the training data's units, one-hot groups exact — so synthetic rows can be drawn without TorchSharp.
    /// </summary>
    public void ExportGeneratorOnnx(string path, OnnxExportOptions? options = null) => Onnx.OnnxExporter.Write(BuildOnnx(options, generator: true), path);

    private global::Onnx.ModelProto BuildOnnx(OnnxExportOptions? options, bool generator)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var o = options ?? new OnnxExportOptions();
        o.Validate();
        var g = new Onnx.OnnxGraph();
        const global::Onnx.TensorProto.Types.DataType f32 = global::Onnx.TensorProto.Types.DataType.Float;
        lock (_lock)
        {
            if (generator)
            {
                string output = g.Reserve(FeatureColumnName);
                g.Graph.Input.Add(Onnx.OnnxGraph.Value(g.Reserve("Noise"), f32, [null, Spec.LatentSize]));
                string? cls = IsConditional ? g.Reserve("Class") : null;
                if (cls is not null) g.Graph.Input.Add(Onnx.OnnxGraph.Value(cls, global::Onnx.TensorProto.Types.DataType.Int64, [null]));
                string rows = _network.ExportGenerator(g, "Noise", cls);
                g.Graph.Node.Add(new global::Onnx.NodeProto { OpType = "Identity", Name = g.Fresh("output"), Input = { rows }, Output = { output } });
                g.Graph.Output.Add(Onnx.OnnxGraph.Value(output, f32, [null, Spec.InputSize]));
            }
            else
            {
                g.Graph.Input.Add(Onnx.OnnxGraph.Value(g.Reserve(FeatureColumnName), f32, [null, Spec.InputSize]));
                string score = g.Reserve(ColumnNames.Score);
                string realness = _network.ExportRealness(g, FeatureColumnName);
                g.Graph.Node.Add(new global::Onnx.NodeProto { OpType = "Identity", Name = g.Fresh("output"), Input = { realness }, Output = { score } });
                g.Graph.Output.Add(Onnx.OnnxGraph.Value(score, f32, [null]));
            }
        }
        var metadata = new List<(string, string)> { ("task", generator ? "generator" : "discriminator") };
        if (Manifest.LabelKeyValues is { } kv) metadata.Add(("label_key_values", string.Join("\n", kv.Values)));   // Class k is line k + 1
        return Onnx.OnnxExporter.Wrap(g, o, $"GAN {(generator ? "generator" : "discriminator")}", Manifest, metadata);
    }

    /// <summary>
    /// Generates <paramref name="count"/> synthetic rows: the feature column (in the training data's units) and, for a
    /// conditional GAN, the label — <paramref name="classIndex"/> (0-based, see <see cref="ClassNames"/>) for every row, or
    /// classes drawn with the training data's frequencies when null. The same seed gives the same rows.
    /// </summary>
    public IDataView Generate(int count, int seed = 0, int? classIndex = null)
    {
        var (features, labels) = GenerateRows(count, seed, classIndex);
        return new GeneratedDataView(this, features, labels);
    }

    /// <summary>Generates <paramref name="count"/> rows of the class named <paramref name="label"/> (one of <see cref="ClassNames"/>).</summary>
    public IDataView Generate(int count, int seed, string label) => Generate(count, seed, ClassIndex(label));

    private int ClassIndex(string label)
    {
        int k = ClassNames.ToList().IndexOf(label);
        return k >= 0 ? k : throw new ArgumentException(
            IsConditional ? $"'{label}' is not a class of label column '{Manifest.LabelColumnName}'; the classes are {string.Join(", ", ClassNames)}."
                          : "This GAN is unconditional; it generates rows without a class.", nameof(label));
    }

    /// <summary>Generated rows as flat row-major floats in feature units, and their class indices.</summary>
    internal (float[] Features, uint[]? Labels) GenerateRows(int count, int seed, int? classIndex)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (classIndex is int c && (!IsConditional || c < 0 || c >= Manifest.ClassCount))
            throw new ArgumentOutOfRangeException(nameof(classIndex), classIndex,
                IsConditional ? $"The class index must be in [0, {Manifest.ClassCount}) (label column '{Manifest.LabelColumnName}')." : "This GAN is unconditional; pass no class.");
        if (count == 0) return ([], IsConditional ? [] : null);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        Tensor rows;
        Tensor? y;
        lock (_lock)
        {
            (rows, y) = _network.Sample(count, seed, classIndex, Device);
            rows = _network.Unscale(rows);
        }
        var labels = y?.cpu().data<long>().Select(v => (uint)v).ToArray();
        return (rows.cpu().data<float>().ToArray(), labels);
    }

    /// <summary>
    /// A PNG grid of generated images (DCGAN models): one row per class with <paramref name="perClass"/> samples for a
    /// conditional GAN, else <paramref name="perClass"/> × <paramref name="perClass"/> samples.
    /// </summary>
    public byte[] ImageGrid(int perClass = 8, int seed = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfLessThan(perClass, 1);
        lock (_lock) return _network.ImageGrid(perClass, seed, Device);
    }

    /// <summary>Writes <see cref="ImageGrid"/> to <paramref name="path"/>.</summary>
    public void SaveImageGrid(string path, int perClass = 8, int seed = 0) => File.WriteAllBytes(path, ImageGrid(perClass, seed));

    /// <summary>Writes the model into an ML.NET model repository entry (called by <c>mlContext.Model.Save</c>).</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => MlNetBridge.Save(ctx, ModelSignature, ModelVersion, LoaderSignature, Write);

    private void Write(BinaryWriter writer) => ModelEntry.Write(writer, Magic, Manifest, _network, _lock);

    private static GanTransformer Read(MLContext context, BinaryReader reader, Device device)
    {
        var (manifest, network) = ModelEntry.Read(reader, Magic, "GAN", m => m.Spec is GanSpec spec
            ? new GanNetwork(spec)
            : throw new FormatException($"The model describes a {m.Spec.Family} network, not a GAN."));
        return new GanTransformer(context, manifest, network, device);
    }

    /// <summary>ML.NET's loader entry point (registered by <see cref="DeepCatalog"/>): <c>SignatureLoadModel</c>.</summary>
    internal static GanTransformer Create(IHostEnvironment env, object modelLoadContext)
    {
        var reader = MlNetBridge.OpenForLoad(modelLoadContext, ModelSignature, ModelVersion, LoaderSignature);
        var context = env as MLContext ?? new MLContext();
        var device = DeepDevice.FromContext(context).Resolve(fallbackToCpu: context.FallbackToCpu);
        return Read(context, reader, device);
    }

    internal static MethodInfo CreateMethod { get; } =
        typeof(GanTransformer).GetMethod(nameof(Create), BindingFlags.NonPublic | BindingFlags.Static)!;

    /// <summary>Releases the networks' native memory.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _network.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"GanTransformer({Spec.Family}, {Spec.InputSize} features{(IsConditional ? $", conditional on '{Manifest.LabelColumnName}' ({Manifest.ClassCount} classes)" : "")})";

    /// <summary>Generated rows as an in-memory data view: the feature vector column and, when conditional, the Key label.</summary>
    private sealed class GeneratedDataView : IDataView
    {
        private readonly float[] _features;
        private readonly uint[]? _labels;
        private readonly int _width;

        public GeneratedDataView(GanTransformer model, float[] features, uint[]? labels)
        {
            _features = features;
            _labels = labels;
            _width = model.Spec.InputSize;
            var builder = new DataViewSchema.Builder();
            builder.AddColumn(model.FeatureColumnName, new VectorDataViewType(NumberDataViewType.Single, _width));
            if (labels is not null)
            {
                var ann = new DataViewSchema.Annotations.Builder();
                model.Manifest.LabelKeyValues?.AddTo(ann);
                builder.AddColumn(model.Manifest.LabelColumnName, new KeyDataViewType(typeof(uint), model.Manifest.ClassCount), ann.ToAnnotations());
            }
            Schema = builder.ToSchema();
        }

        public bool CanShuffle => false;
        public DataViewSchema Schema { get; }
        public long? GetRowCount() => _features.Length / _width;
        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(this);
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => [new Cursor(this)];

        private sealed class Cursor(GeneratedDataView view) : DataViewRowCursor
        {
            private long _row = -1;
            public override DataViewSchema Schema => view.Schema;
            public override long Position => _row;
            public override long Batch => 0;
            public override bool MoveNext() => ++_row < view.GetRowCount();
            public override bool IsColumnActive(DataViewSchema.Column column) => true;
            public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_row, 0);

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                Delegate getter = column.Index == 0
                    ? (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) =>
                    {
                        var editor = VBufferEditor.Create(ref dst, view._width);
                        view._features.AsSpan((int)(_row * view._width), view._width).CopyTo(editor.Values);
                        dst = editor.Commit();
                    })
                    : (ValueGetter<uint>)((ref uint dst) => dst = view._labels![_row] + 1);
                return getter as ValueGetter<TValue>
                    ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}, not {typeof(TValue).Name}.");
            }
        }
    }
}
