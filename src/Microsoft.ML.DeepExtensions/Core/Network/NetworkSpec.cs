using System.Text.Json.Serialization;
using Microsoft.ML.DeepExtensions.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Network;

/// <summary>
/// A plain, serialisable description of a network. It is what a saved model stores, so a model rebuilds itself
/// with no user code: each family adds one <see cref="JsonDerivedTypeAttribute"/> line here.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "family")]
[JsonDerivedType(typeof(MlpSpec), "mlp")]
[JsonDerivedType(typeof(PerceptronSpec), "perceptron")]
[JsonDerivedType(typeof(CnnSpec), "cnn")]
[JsonDerivedType(typeof(RecurrentSpec), "recurrent")]
[JsonDerivedType(typeof(FtTransformerSpec), "ft-transformer")]
[JsonDerivedType(typeof(TransformerSpec), "transformer")]
[JsonDerivedType(typeof(GanSpec), "gan")]
public abstract class NetworkSpec
{
    /// <summary>Length of the flattened feature vector the network reads.</summary>
    public int InputSize { get; set; }

    /// <summary>Outputs: 1 (binary logit or regression value) or the number of classes.</summary>
    public int OutputSize { get; set; }

    /// <summary>The image shape an image feature column is decoded to, for networks that read images; null otherwise.</summary>
    [JsonIgnore]
    public virtual ImageShape? InputImage => null;

    /// <summary>
    /// For networks that read token sequences: how the key vector is read (vocabulary, maximum length). The trainer sets
    /// it after building the spec; null for float input.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public TokenInput? InputTokens { get; set; }

    /// <summary>
    /// For networks that read variable-length numeric sequences: how the vector of Single is read (values per step, maximum
    /// steps, overflow; the input is <see cref="SequenceInput.Size"/> floats). The trainer sets it after building the spec;
    /// null for fixed-size input.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SequenceInput? InputSequence { get; set; }

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
public sealed record LayerInfo(string Name, long[] OutputShape, long Parameters);

/// <summary>A Keras-like model summary.</summary>
/// <param name="Family">Network family.</param>
/// <param name="Layers">The layers in order.</param>
public sealed record NetworkSummary(string Family, IReadOnlyList<LayerInfo> Layers)
{
    /// <summary>Total trainable parameters.</summary>
    public long TotalParameters => Layers.Sum(l => l.Parameters);

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
