using System.Text.Json.Serialization;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Persistence;
using Microsoft.ML.DeepExtensions.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

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
    private protected abstract void LoadPretrained(PretrainedModel model, OnnxModelContents onnx, nn.Module<Tensor, Tensor> body);

    /// <inheritdoc />
    protected sealed override void InitializeWeights(nn.Module<Tensor, Tensor> body, NetworkSpec spec)
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
        var column = ColumnChecks.Find(schema, o.FeatureColumnName, "Feature");
        var input = InputFor(column.Type, o.FeatureColumnName);
        var spec = CreateSpec(new SpecRequest(input, 1, DeepTask.Regression) { FeatureColumn = column });
        spec.Input = input;
        spec.Validate();
        var device = (o.Device ?? DeepDevice.FromContext(Context)).Resolve(Context.FallbackToCpu);
        torch.manual_seed(o.Seed ?? 0);
        var network = new DeepNetwork(spec);
        try
        {
            InitializeWeights(network.Body, spec);
            var manifest = new ModelManifest
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

    internal sealed override IStepper CreateStepper(DeepNetwork network, LossFunction loss, DeepTask task, Device device) =>
        new GradientStepper(network, loss, TrainerOptions, task == DeepTask.Regression, device,
            new FineTuning(name => name.StartsWith(BackbonePrefix, StringComparison.Ordinal), TrainerOptions.FreezeBackboneEpochs,
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
