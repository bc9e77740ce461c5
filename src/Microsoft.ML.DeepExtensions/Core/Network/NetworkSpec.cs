using System.Text.Json.Serialization;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Network;

/// <summary>
/// A plain, serialisable description of a network. It is what a saved model stores, so a model rebuilds itself
/// with no user code: each family's spec class names itself with <see cref="SerializedNameAttribute"/>.
/// </summary>
public abstract class NetworkSpec
{
    /// <summary>
    /// Registers a spec type of another assembly (it must carry <see cref="SerializedNameAttribute"/>) so that models of
    /// that family save and load. Registering the same type again does nothing; a name taken by another type throws.
    /// </summary>
    public static void Register(Type specType) => Persistence.SerializedTypes.Register(typeof(NetworkSpec), specType);

    /// <summary>Length of the flattened feature vector the network reads.</summary>
    public int InputSize { get; set; }

    /// <summary>Outputs: 1 (binary logit or regression value) or the number of classes.</summary>
    public int OutputSize { get; set; }

    private FeatureInput? _input;

    /// <summary>
    /// How the feature column is read (a vector, an image, token ids, a numeric sequence). The trainer sets it at Fit; it
    /// defaults to <see cref="DefaultInput"/>.
    /// </summary>
    [JsonIgnore]
    public FeatureInput Input
    {
        get => _input ?? DefaultInput;
        set => _input = value;
    }

    /// <summary>What a spec reads when no input was set: a vector of <see cref="InputSize"/> floats (an image for a CNN).</summary>
    [JsonIgnore]
    protected virtual FeatureInput DefaultInput => new VectorInput(InputSize);

    /// <summary>The input as the model file stores it: only when it is not the default.</summary>
    [JsonInclude, JsonPropertyName("Input"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    internal FeatureInput? StoredInput
    {
        get => _input is null || _input == DefaultInput ? null : _input;
        set => _input = value;
    }

    /// <summary>Model files written before <see cref="Input"/> existed stored token inputs here.</summary>
    [JsonInclude, JsonPropertyName("InputTokens"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    internal TokenInput? LegacyTokens { get => null; set => _input ??= value; }

    /// <summary>Model files written before <see cref="Input"/> existed stored numeric-sequence inputs here.</summary>
    [JsonInclude, JsonPropertyName("InputSequence"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    internal SequenceInput? LegacySequence { get => null; set => _input ??= value; }

    /// <summary>
    /// True when the network brings its own input normalisation (a pretrained backbone's, fixed by how it was trained):
    /// the trainer then leaves the features as they are instead of standardising them.
    /// </summary>
    [JsonIgnore]
    public virtual bool NormalizesInput => false;

    /// <summary>The family's display name ("MLP", "Perceptron", ...).</summary>
    [JsonIgnore]
    public abstract string Family { get; }

    /// <summary>Builds the TorchSharp module: float input [batch, InputSize] → output [batch, OutputSize].</summary>
    public abstract nn.Module<Tensor, Tensor> Build();

    /// <summary>The layers for <see cref="NetworkSummary"/>: name, output shape (without batch), parameter count.</summary>
    public abstract IEnumerable<LayerInfo> Layers();

    /// <summary>A Keras-like layer table (layer, output shape, parameters, total).</summary>
    public NetworkSummary Summary() => new(Family, Layers().ToList());

    /// <summary>Checks the spec; throws naming the offending layer or setting.</summary>
    public virtual void Validate()
    {
        if (InputSize < 1) throw new InvalidOperationException($"{Family}: the input size must be at least 1 (got {InputSize}).");
        if (OutputSize < 1) throw new InvalidOperationException($"{Family}: the output size must be at least 1 (got {OutputSize}).");
    }
}

/// <summary>One row of a <see cref="NetworkSummary"/>.</summary>
/// <param name="Name">Layer name and type.</param>
/// <param name="OutputShape">Output shape without the batch dimension.</param>
/// <param name="Parameters">Trainable parameters.</param>
public sealed record LayerInfo(string Name, long[] OutputShape, long Parameters)
{
    /// <summary>
    /// Values per row the layer keeps for the backward pass besides its output (an attention layer's score maps, a
    /// feed-forward block's hidden layer); 0 when the output is all. Used by <see cref="NetworkSummary.TrainingBytes"/>.
    /// </summary>
    public long InternalActivations { get; init; }
}

/// <summary>A Keras-like model summary.</summary>
/// <param name="Family">Network family.</param>
/// <param name="Layers">The layers in order.</param>
public sealed record NetworkSummary(string Family, IReadOnlyList<LayerInfo> Layers)
{
    /// <summary>Total trainable parameters.</summary>
    public long TotalParameters => Layers.Sum(l => l.Parameters);

    /// <summary>
    /// A rough upper estimate of the memory one training step takes, in bytes (float32): the weights, their gradients
    /// and two optimizer moments, plus each layer's activations (output and internal values) about three times over
    /// (the value, its gradient and a temporary) for every row of <paramref name="batchSize"/>. What matters is the order
    /// of magnitude: an attention over ten thousand tokens is caught before it asks libtorch for hundreds of gigabytes.
    /// </summary>
    public long TrainingBytes(int batchSize)
    {
        long activations = Layers.Sum(l => l.OutputShape.Aggregate(1L, (a, b) => a * b) + l.InternalActivations);
        return 4 * (4 * TotalParameters + 3L * batchSize * activations);
    }

    /// <inheritdoc />
    public override string ToString()
    {
        const int w1 = 32, w2 = 20, w3 = 12;
        var line = new string('─', w1 + w2 + w3);
        var rows = Layers.Select(l => $"{l.Name,-w1}{"(" + string.Join(", ", l.OutputShape) + ")",-w2}{l.Parameters,w3:N0}");
        return string.Join(Environment.NewLine, new[] { $"{Family}", line, $"{"Layer",-w1}{"Output shape",-w2}{"Params",w3}", line }
            .Concat(rows).Append(line).Append($"Total params: {TotalParameters:N0}"));
    }
}
