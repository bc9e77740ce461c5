using System.Runtime.CompilerServices;
using Microsoft.ML.DeepExtensions.Persistence;

namespace Microsoft.ML.DeepExtensions;

/// <summary>Entry point: <c>mlContext.Deep()</c>.</summary>
public static class DeepMLContextExtensions
{
    /// <summary>
    /// The deep-learning catalog of <paramref name="context"/>. Calling it also registers the model loader with the
    /// context, so <c>mlContext.Model.Load</c> can read saved deep models (see <see cref="DeepCatalog.LoadModel"/>).
    /// </summary>
    public static DeepCatalog Deep(this MLContext context) => new(context);
}

/// <summary>Deep-learning trainers for ML.NET, created from <c>mlContext.Deep()</c>.</summary>
public sealed class DeepCatalog
{
    private static readonly ConditionalWeakTable<ComponentCatalog, object> Registered = new();

    internal DeepCatalog(MLContext context)
    {
        Context = context ?? throw new ArgumentNullException(nameof(context));
        Register(context);
    }

    /// <summary>The ML.NET context.</summary>
    public MLContext Context { get; }

    /// <summary>A multilayer perceptron trainer.</summary>
    public MlpTrainer Mlp(MlpTrainer.Options options) => new(Context, options);

    /// <summary>A multilayer perceptron trainer with the given columns and (optionally) hidden layer widths.</summary>
    public MlpTrainer Mlp(string labelColumnName = ColumnNames.Label, string featureColumnName = ColumnNames.Features,
        int[]? hiddenLayers = null, int epochs = 10) =>
        new(Context, new MlpTrainer.Options
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, Epochs = epochs,
            HiddenLayers = hiddenLayers ?? new MlpTrainer.Options().HiddenLayers,
        });

    /// <summary>A convolutional network trainer for images.</summary>
    public CnnTrainer Cnn(CnnTrainer.Options options) => new(Context, options);

    /// <summary>A convolutional network trainer with the default architecture for images of <paramref name="imageShape"/> (null: inferred).</summary>
    public CnnTrainer Cnn(string labelColumnName = ColumnNames.Label, string featureColumnName = ColumnNames.Features,
        ImageShape? imageShape = null, int epochs = 5) =>
        new(Context, new CnnTrainer.Options
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, ImageShape = imageShape, Epochs = epochs,
        });

    /// <summary>A vision transformer (ViT) trainer for images: patches as tokens, trained from scratch.</summary>
    public VitTrainer Vit(VitTrainer.Options options) => new(Context, options);

    /// <summary>A vision transformer with the default architecture (4×4 patches, 6 layers) for images of <paramref name="imageShape"/> (null: inferred).</summary>
    public VitTrainer Vit(string labelColumnName = ColumnNames.Label, string featureColumnName = ColumnNames.Features,
        ImageShape? imageShape = null, int epochs = 10) =>
        new(Context, new VitTrainer.Options
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, ImageShape = imageShape, Epochs = epochs,
        });

    /// <summary>
    /// Trains a CNN and outputs its penultimate layer as the float vector column <paramref name="outputColumnName"/>,
    /// for a classic trainer to learn on in the same pipeline.
    /// </summary>
    public DeepFeaturizerEstimator CnnFeaturizer(CnnTrainer.Options options, string outputColumnName = "CnnFeatures") =>
        new(new CnnTrainer(Context, options), outputColumnName);

    /// <summary>
    /// Fine-tunes a pretrained ResNet on images (set <see cref="PretrainedTrainerOptions.Model"/>, e.g. to
    /// <c>PretrainedModels.ResNet18</c>; <c>ResNet18(...)</c> in the Pretrained package does it for you).
    /// </summary>
    public PretrainedCnnTrainer PretrainedCnn(PretrainedCnnTrainer.Options options) => new(Context, options);

    /// <summary>
    /// Fine-tunes a pretrained BERT-layout text encoder on a text column (set <see cref="PretrainedTrainerOptions.Model"/>,
    /// e.g. to <c>PretrainedModels.MiniLmL6</c>; <c>MiniLm(...)</c> in the Pretrained package does it for you).
    /// </summary>
    public PretrainedTransformerTrainer PretrainedTransformer(PretrainedTransformerTrainer.Options options) => new(Context, options);

    /// <summary>A recurrent network trainer (RNN, LSTM or GRU) for sequences.</summary>
    public LstmTrainer Lstm(LstmTrainer.Options options) => new(Context, options);

    /// <summary>An LSTM trainer with the given columns, reading the feature vector as <paramref name="sequenceShape"/> (null: T steps of one value).</summary>
    public LstmTrainer Lstm(string labelColumnName = ColumnNames.Label, string featureColumnName = ColumnNames.Features,
        SequenceShape? sequenceShape = null, int hiddenSize = 64, int epochs = 10) =>
        new(Context, new LstmTrainer.Options
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, SequenceShape = sequenceShape,
            HiddenSize = hiddenSize, Epochs = epochs,
        });

    /// <summary>
    /// Windows an ordered series column into rows of <paramref name="lookBack"/> past values (Features), the next
    /// <paramref name="horizon"/> values (Label) and the persistence forecast (LastValue); see <see cref="SeriesWindows.Create"/>.
    /// </summary>
    public IDataView SeriesWindows(IDataView data, string seriesColumnName, int lookBack, int horizon = 1, int stride = 1) =>
        DeepExtensions.SeriesWindows.Create(Context, data, seriesColumnName, lookBack, horizon, stride);

    /// <summary>An encoder-only transformer trained from scratch on token sequences (TokenizeIntoWords → MapValueToKey).</summary>
    public TransformerTrainer Transformer(TransformerTrainer.Options options) => new(Context, options);

    /// <summary>A text transformer with the default architecture on the key-vector column <paramref name="featureColumnName"/>.</summary>
    public TransformerTrainer Transformer(string labelColumnName = ColumnNames.Label, string featureColumnName = "Tokens",
        int maxSequenceLength = 64, int epochs = 8) =>
        new(Context, new TransformerTrainer.Options
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, MaxSequenceLength = maxSequenceLength, Epochs = epochs,
        });

    /// <summary>An encoder–decoder that generates a token sequence from a token sequence or a vector (keys in, keys out).</summary>
    public SequenceGeneratorTrainer SequenceGenerator(SequenceGeneratorTrainer.Options options) => new(Context, options);

    /// <summary>Text generation, text in and text out: from a source text column (many-to-many) or a condition such as a class (one-to-many).</summary>
    public TextGenerator TextGenerator(TextGenerator.Options options) => new(Context, options);

    /// <summary>An FT-Transformer for tabular data (numeric and one-hot categorical features as tokens).</summary>
    public FtTransformerTrainer FtTransformer(FtTransformerTrainer.Options options) => new(Context, options);

    /// <summary>An FT-Transformer for tabular data with the given columns and the default architecture.</summary>
    public FtTransformerTrainer FtTransformer(string labelColumnName = ColumnNames.Label, string featureColumnName = ColumnNames.Features, int epochs = 20) =>
        new(Context, new FtTransformerTrainer.Options { LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, Epochs = epochs });

    /// <summary>Rosenblatt's perceptron (binary).</summary>
    public PerceptronTrainer Perceptron(PerceptronTrainer.Options options) => new(Context, options);

    /// <summary>Rosenblatt's perceptron (binary) with the given columns.</summary>
    public PerceptronTrainer Perceptron(string labelColumnName = ColumnNames.Label, string featureColumnName = ColumnNames.Features,
        int epochs = 20, bool averaged = true) =>
        new(Context, new PerceptronTrainer.Options
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, Epochs = epochs, Averaged = averaged,
        });

    /// <summary>A generative adversarial network trainer (MLP networks for vectors, a DCGAN when <c>ImageShape</c> is set).</summary>
    public GanTrainer Gan(GanTrainer.Options options) => new(Context, options);

    /// <summary>
    /// A GAN trainer on <paramref name="featureColumnName"/>; conditional on the Key column <paramref name="labelColumnName"/>
    /// when given; a DCGAN when <paramref name="imageShape"/> is given.
    /// </summary>
    public GanTrainer Gan(string featureColumnName = ColumnNames.Features, string? labelColumnName = null, ImageShape? imageShape = null, int epochs = 20) =>
        new(Context, new GanTrainer.Options
        {
            FeatureColumnName = featureColumnName, LabelColumnName = labelColumnName, ImageShape = imageShape, Epochs = epochs,
        });

    /// <summary>
    /// Exports a fitted chain that ends in a deep model (for example OneHotEncoding → Concatenate →
    /// NormalizeMeanVariance → <see cref="MlpTrainer"/>) as one ONNX model that takes the chain's raw input columns: the
    /// ML.NET transforms through ML.NET's own converter, the deep model through <see cref="DeepTransformer.ExportOnnx(string, OnnxExportOptions?)"/>.
    /// A chain that is only a deep model exports as that model.
    /// </summary>
    /// <param name="model">The fitted chain (or a single deep model).</param>
    /// <param name="sampleData">Data with the chain's input schema (ML.NET's converter reads the schema from it).</param>
    /// <param name="path">The .onnx file to write (written to a temporary file, then moved).</param>
    /// <param name="options">Export options.</param>
    /// <exception cref="NotSupportedException">A transform has no ONNX form, or the chain continues after the deep model (the message names it).</exception>
    public void ExportOnnx(ITransformer model, IDataView sampleData, string path, OnnxExportOptions? options = null) =>
        Onnx.OnnxExporter.Write(Onnx.OnnxPipeline.Build(Context, model, sampleData, options ?? new OnnxExportOptions()), path);

    /// <summary>
    /// Saves <paramref name="model"/> like <c>mlContext.Model.Save</c>, but atomically: it is written to a temporary file
    /// beside <paramref name="path"/> and moved over it only when complete, so a crash, a cancellation or a full disk
    /// never leaves a partial model there, and a reader watching the file (a scoring service) sees the old model or the
    /// new one.
    /// </summary>
    /// <param name="model">The fitted model or chain.</param>
    /// <param name="inputSchema">The schema of the data the model scores (saved with it, as ML.NET does).</param>
    /// <param name="path">The model file (.zip) to write or replace.</param>
    public void SaveModel(ITransformer model, DataViewSchema inputSchema, string path) =>
        AtomicFile.Write(path, tmp => Context.Model.Save(model, inputSchema, tmp));

    /// <summary>
    /// Loads a model saved with <c>mlContext.Model.Save</c>. Same as <c>mlContext.Model.Load</c> (which also works once
    /// <c>mlContext.Deep()</c> has been called on the context), but every problem with the file — not a model, truncated,
    /// altered since it was saved (the weights' and manifest's SHA-256 are verified) — is one
    /// <see cref="ModelFileException"/> naming the file and what is wrong.
    /// </summary>
    /// <exception cref="FileNotFoundException"><paramref name="path"/> does not exist.</exception>
    /// <exception cref="ModelFileException">The file is not a loadable model, or it was altered or truncated.</exception>
    public ITransformer LoadModel(string path, out DataViewSchema inputSchema)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
        try
        {
            return Context.Model.Load(path, out inputSchema);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var inner = e;
            while (inner is not ModelFileException && inner.InnerException is not null) inner = inner.InnerException;
            throw new ModelFileException(path, inner is ModelFileException ours ? ours.Message : Diagnose(path, inner), e);
        }
    }

    // Why ML.NET could not read the file: not a zip, a zip without a model, or a model whose entry is damaged.
    private static string Diagnose(string path, Exception e)
    {
        string why = $"({e.GetType().Name}: {e.Message})";
        try
        {
            using var zip = System.IO.Compression.ZipFile.OpenRead(path);
            return zip.Entries.Any(x => x.Name == "Model.key")
                ? $"an ML.NET model file with a corrupt or truncated entry {why}"
                : $"a zip archive, but not an ML.NET model file: it has no model entries {why}";
        }
        catch (InvalidDataException)
        {
            return $"not an ML.NET model file: not a readable zip archive (it may be truncated) {why}";
        }
    }

    /// <summary>
    /// Registers the deep-model loader with <paramref name="context"/>'s component catalog (idempotent). ML.NET keeps
    /// one catalog per context and offers third-party libraries no public hook, so a fresh context that only loads a
    /// model needs this (or any <c>mlContext.Deep()</c> call) first.
    /// </summary>
    public static void Register(MLContext context)
    {
        var catalog = context.ComponentCatalog;
        if (Registered.TryGetValue(catalog, out _)) return;
        MlNetBridge.RegisterLoader(catalog, typeof(DeepTransformer), DeepTransformer.LoaderSignature, DeepTransformer.CreateMethod);
        MlNetBridge.RegisterLoader(catalog, typeof(GanTransformer), GanTransformer.LoaderSignature, GanTransformer.CreateMethod);
        MlNetBridge.RegisterLoader(catalog, typeof(WeightedEnsembleTransformer), WeightedEnsembleTransformer.LoaderSignature, WeightedEnsembleTransformer.CreateMethod);
        catalog.RegisterAssembly(typeof(DeepCatalog).Assembly);   // the custom mappings of TextGenerator load by their contract names
        Registered.AddOrUpdate(catalog, true);
    }
}
