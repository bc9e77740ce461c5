using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>
/// A pretrained BERT-layout text encoder (e.g. all-MiniLM-L6-v2) with a new head: WordPiece ids → encoder → mean-pooled
/// sentence embedding → dropout → linear output layer. The encoder's parameters are named "bert.*" (Hugging Face's names).
/// </summary>
[SerializedName("pretrained-transformer")]
public sealed class PretrainedTransformerSpec : NetworkSpec
{
    /// <summary>The encoder's name as the summary shows it.</summary>
    public string EncoderName { get; set; } = "BERT";
    /// <summary>The encoder's sizes (read from its weights at training).</summary>
    public BertShape Shape { get; set; } = new(30522, 384, 6, 12, 1536, 512, 2);
    /// <summary>Dropout inside the encoder while fine-tuning (BERT's 0.1).</summary>
    public double EncoderDropout { get; set; } = 0.1;
    /// <summary>Dropout before the output layer.</summary>
    public double HeadDropout { get; set; }

    /// <inheritdoc />
    public override string Family => $"{EncoderName} (pretrained)";

    /// <inheritdoc />
    public override bool NormalizesInput => true;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        var s = Shape;
        if (s.Hidden < 1 || s.Heads < 1 || s.Hidden % s.Heads != 0)
            throw new InvalidOperationException($"{Family}: the width {s.Hidden} must be a multiple of the {s.Heads} attention heads.");
        if (InputSize < 3 || InputSize > s.MaxPositions)
            throw new InvalidOperationException($"{Family}: MaxTokens must be between 3 and the encoder's {s.MaxPositions} positions (got {InputSize}).");
        if (EncoderDropout is < 0 or >= 1 || HeadDropout is < 0 or >= 1) throw new InvalidOperationException($"{Family}: dropout must be in [0, 1).");
    }

    /// <inheritdoc />
    public override nn.Module<Tensor, Tensor> Build()
    {
        var layers = new List<(string, nn.Module<Tensor, Tensor>)> { ("bert", new BertEncoder(Shape, EncoderDropout, InputSize)) };
        if (HeadDropout > 0) layers.Add(("dropout", nn.Dropout(HeadDropout)));
        layers.Add(("output", nn.Linear(Shape.Hidden, OutputSize)));
        return nn.Sequential(layers);
    }

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        var s = Shape;
        yield return new LayerInfo($"input (WordPiece ids, {s.Vocabulary:N0}-token vocabulary)", [InputSize], 0);
        yield return new LayerInfo($"bert ({s.Layers} layers × {s.Heads} heads, mean-pooled)", [s.Hidden], s.ParameterCount);
        if (HeadDropout > 0) yield return new LayerInfo($"dropout ({HeadDropout:0.##})", [s.Hidden], 0);
        yield return new LayerInfo("output (Linear)", [OutputSize], (long)s.Hidden * OutputSize + OutputSize);
    }
}
