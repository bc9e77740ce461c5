using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>Rosenblatt's perceptron: one linear unit w·x + b (the bias unit) thresholded by a step.</summary>
[SerializedName("perceptron")]
public sealed class PerceptronSpec : NetworkSpec
{
    /// <inheritdoc />
    public override string Family => "Perceptron";

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (OutputSize != 1) throw new InvalidOperationException($"Perceptron: a perceptron has one output unit (binary); got {OutputSize}.");
    }

    /// <inheritdoc />
    public override nn.Module<Tensor, Tensor> Build() => nn.Linear(InputSize, 1);

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        yield return new LayerInfo("input", [InputSize], 0);
        yield return new LayerInfo("unit (w·x + b, step)", [1], InputSize + 1L);
    }
}
