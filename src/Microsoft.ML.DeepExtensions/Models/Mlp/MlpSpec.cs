using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>A multilayer perceptron: hidden Linear layers (optional batch norm), an activation and dropout each, then a Linear output.</summary>
[SerializedName("mlp")]
public sealed class MlpSpec : NetworkSpec
{
    /// <summary>Hidden layer widths, input side first.</summary>
    public int[] HiddenSizes { get; set; } = [];

    /// <summary>Activation of each hidden layer (same length as <see cref="HiddenSizes"/>).</summary>
    public Activation[] Activations { get; set; } = [];

    /// <summary>Dropout probability after each hidden activation.</summary>
    public double Dropout { get; set; }

    /// <summary>Batch normalisation after each hidden Linear layer.</summary>
    public bool BatchNorm { get; set; }

    /// <inheritdoc />
    public override string Family => "MLP";

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (HiddenSizes.Any(h => h < 1))
            throw new InvalidOperationException($"MLP: hidden layer {Array.FindIndex(HiddenSizes, h => h < 1) + 1} has {HiddenSizes.First(h => h < 1)} units; every layer needs at least 1.");
        if (Activations.Length != HiddenSizes.Length)
            throw new InvalidOperationException($"MLP: {HiddenSizes.Length} hidden layers but {Activations.Length} activations; give one per layer.");
        if (Activations.Contains(Activation.Softmax))
            throw new InvalidOperationException("MLP: softmax is an output function, not a hidden activation (the loss applies it).");
        if (Dropout is < 0 or >= 1) throw new InvalidOperationException($"MLP: dropout must be in [0, 1); got {Dropout}.");
    }

    /// <inheritdoc />
    public override nn.Module<Tensor, Tensor> Build()
    {
        var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
        int width = InputSize;
        for (int i = 0; i < HiddenSizes.Length; i++)
        {
            layers.Add(($"dense{i + 1}", nn.Linear(width, HiddenSizes[i])));
            if (BatchNorm) layers.Add(($"batchnorm{i + 1}", nn.BatchNorm1d(HiddenSizes[i])));
            layers.Add(($"{Activations[i].ToString().ToLowerInvariant()}{i + 1}", DeepExtensions.Activations.Module(Activations[i])));
            if (Dropout > 0) layers.Add(($"dropout{i + 1}", nn.Dropout(Dropout)));
            width = HiddenSizes[i];
        }
        layers.Add(("output", nn.Linear(width, OutputSize)));
        return nn.Sequential(layers);
    }

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        yield return new LayerInfo("input", [InputSize], 0);
        int width = InputSize;
        for (int i = 0; i < HiddenSizes.Length; i++)
        {
            int h = HiddenSizes[i];
            yield return new LayerInfo($"dense{i + 1} (Linear, {Activations[i]})", [h], (long)width * h + h);
            if (BatchNorm) yield return new LayerInfo($"batchnorm{i + 1} (BatchNorm1d)", [h], 2L * h);
            if (Dropout > 0) yield return new LayerInfo($"dropout{i + 1} ({Dropout:0.##})", [h], 0);
            width = h;
        }
        yield return new LayerInfo("output (Linear)", [OutputSize], (long)width * OutputSize + OutputSize);
    }
}
