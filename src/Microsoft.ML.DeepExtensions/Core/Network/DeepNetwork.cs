using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Network;

/// <summary>
/// The module every family's network is wrapped in: fixed input standardisation (buffers, saved with the weights),
/// the family's body, and a fixed output scale for regression targets (the network learns standardised targets).
/// </summary>
internal sealed class DeepNetwork : nn.Module<Tensor, Tensor>
{
    private readonly Tensor mean;
    private readonly Tensor scale;
    private readonly Tensor target_mean;
    private readonly Tensor target_scale;
    private readonly nn.Module<Tensor, Tensor> body;

    public DeepNetwork(NetworkSpec spec) : base("DeepNetwork")
    {
        mean = zeros(spec.InputSize);
        scale = ones(spec.InputSize);
        target_mean = zeros(1);
        target_scale = ones(1);
        body = spec.Build();
        register_buffer(nameof(mean), mean);
        register_buffer(nameof(scale), scale);
        register_buffer(nameof(target_mean), target_mean);
        register_buffer(nameof(target_scale), target_scale);
        RegisterComponents();
    }

    public nn.Module<Tensor, Tensor> Body => body;

    /// <summary>Sets the input statistics (x → (x − mean) / std) and the regression target statistics.</summary>
    public void SetStatistics(float[] featureMean, float[] featureStd, float targetMean, float targetStd)
    {
        using var _ = no_grad();
        using var m = tensor(featureMean);
        using var s = tensor(featureStd.Select(v => v > 1e-8f ? 1f / v : 1f).ToArray());
        mean.copy_(m);
        scale.copy_(s);
        target_mean.fill_(targetMean);
        target_scale.fill_(targetStd > 1e-12f ? targetStd : 1f);
    }

    /// <summary>Standardises a regression target the way the network's output is scaled.</summary>
    public Tensor ScaleTarget(Tensor y) => (y - target_mean) / target_scale;

    /// <summary>The standardised input the body sees.</summary>
    public Tensor Standardize(Tensor x) => (x - mean) * scale;

    /// <summary>Raw output in training units (standardised for regression).</summary>
    public override Tensor forward(Tensor x) => body.call(Standardize(x));

    /// <summary>The training step's forward: a body that learns from the labels as inputs too (<see cref="ILabelFedModule"/>) gets them.</summary>
    public Tensor Forward(Tensor x, Tensor y) => body is ILabelFedModule fed ? fed.Forward(Standardize(x), y) : forward(x);

    /// <summary>The penultimate layer: every layer of the body but the output layer.</summary>
    public Tensor Embed(Tensor x)
    {
        var layers = PenultimateLayers();
        var h = Standardize(x);
        foreach (var layer in layers)
        {
            var next = layer.call(h);
            if (!ReferenceEquals(h, x)) h.Dispose();
            h = next;
        }
        return h;
    }

    /// <summary>Width of <see cref="Embed"/>'s output: the input size of the output layer.</summary>
    public int EmbeddingSize => (int)((TorchSharp.Modules.Linear)OutputLayer()).in_features;

    private nn.Module<Tensor, Tensor>[] PenultimateLayers() => Children()[..^1];

    private nn.Module<Tensor, Tensor> OutputLayer() => Children()[^1];

    private nn.Module<Tensor, Tensor>[] Children() => body is TorchSharp.Modules.Sequential seq
        ? seq.children().Cast<nn.Module<Tensor, Tensor>>().ToArray()
        : throw new NotSupportedException("This network has no hidden layers to take features from.");

    /// <summary>Output in label units: regression outputs are un-standardised.</summary>
    public Tensor Predict(Tensor x) => forward(x) * target_scale + target_mean;

    /// <summary>
    /// Writes what <see cref="Predict"/> (or, for <paramref name="embed"/>, <see cref="Embed"/>) computes as ONNX nodes on
    /// <paramref name="x"/>: the standardisation (when it is not the identity), the body, and the regression target scale.
    /// </summary>
    public string ExportOnnx(Onnx.OnnxGraph g, string x, bool embed, bool regression)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        if (!IsConstant(mean, 0) || !IsConstant(scale, 1))
            x = g.Mul(g.Sub(x, g.Initializer(nameof(mean), mean), "centred"), g.Initializer(nameof(scale), scale), "standardized");
        if (embed)
        {
            var seq = body as TorchSharp.Modules.Sequential ?? throw new NotSupportedException("This network has no hidden layers to take features from.");
            foreach (var (name, child) in seq.named_children().SkipLast(1))
                x = Onnx.OnnxModules.Export(g, child, x, $"body.{name}");
            return x;
        }
        x = Onnx.OnnxModules.Export(g, body, x, "body");
        if (regression && (!IsConstant(target_scale, 1) || !IsConstant(target_mean, 0)))
            x = g.Add(g.Mul(x, g.Initializer(nameof(target_scale), target_scale)), g.Initializer(nameof(target_mean), target_mean), "target");
        return x;
    }

    private static bool IsConstant(Tensor t, float value) => t.eq(value).all().item<bool>();
}

/// <summary>
/// A network body whose training forward also reads the batch's labels — teacher forcing: a decoder is fed the target's
/// previous tokens while it learns to predict each next one. At scoring and validation it reads the features only.
/// </summary>
internal interface ILabelFedModule
{
    /// <summary>Output [B, outputs] for standardised features <paramref name="x"/> and the labels <paramref name="y"/> as the loss reads them.</summary>
    Tensor Forward(Tensor x, Tensor y);
}
