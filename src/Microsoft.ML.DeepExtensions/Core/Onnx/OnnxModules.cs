using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Onnx;

/// <summary>
/// Writes a TorchSharp module (in evaluation mode) as ONNX nodes: TorchSharp's own layers by type, anything else
/// through <see cref="IOnnxExportable"/>. A layer with no ONNX form throws, naming it — never a silently different graph.
/// </summary>
internal static class OnnxModules
{
    /// <summary>Appends <paramref name="module"/> applied to <paramref name="input"/>; returns the output's name.</summary>
    public static string Export(OnnxGraph g, nn.Module module, string input, string path)
    {
        switch (module)
        {
            case IOnnxExportable own:
                return own.ExportOnnx(g, input, path);
            case Sequential seq:
                foreach (var (name, child) in seq.named_children())
                    input = Export(g, child, input, $"{path}.{name}");
                return input;
            case Linear l:
                return g.Linear(input, l.weight, l.bias, path);
            case Conv2d c:
                return Conv(g, c, input, path);
            case ConvTranspose2d ct:
                return Conv(g, ct, input, path);
            case BatchNorm1d or BatchNorm2d:
                return BatchNorm(g, (NormBase)module, input, path);
            case LayerNorm ln:
                return g.LayerNorm(input, ln.weight, ln.bias, ln.eps, path);
            case MaxPool2d p:
                return g.Node("MaxPool", [input], path, ("kernel_shape", p.kernel_size), ("strides", p.stride ?? p.kernel_size),
                    ("pads", Pads(p.padding, p.kernel_size.Length)), ("dilations", p.dilation ?? Ones(p.kernel_size.Length)), ("ceil_mode", p.ceil_mode ? 1L : 0L));
            case AvgPool2d p:
                if (p.divisor_override is not null) throw Unsupported(path, module, "a divisor override");
                return g.Node("AveragePool", [input], path, ("kernel_shape", p.kernel_size), ("strides", p.stride ?? p.kernel_size),
                    ("pads", Pads(p.padding, p.kernel_size.Length)), ("ceil_mode", p.ceil_mode ? 1L : 0L), ("count_include_pad", p.count_include_pad ? 1L : 0L));
            case Flatten f when f.start_dim == 1 && f.end_dim == -1:
                return g.Node("Flatten", [input], path, ("axis", 1L));
            case Dropout or Dropout1d or Dropout2d or AlphaDropout or Identity:
                return input;   // evaluation mode: the identity
            case ReLU:
                return g.Node("Relu", [input], path);
            case Sigmoid:
                return g.Node("Sigmoid", [input], path);
            case Tanh:
                return g.Node("Tanh", [input], path);
            case LeakyReLU lr:
                return g.Node("LeakyRelu", [input], path, ("alpha", lr.negative_slope));
            case Softplus sp when sp.beta == 1:
                return g.Softplus(input, path);
            case GELU ge:
                return g.Gelu(input, path, ge.approximate == GELU.Approximate.tanh);
            case Softmax sm:
                return g.Softmax(input, sm.dim, path);
            default:
                throw Unsupported(path, module, "no ONNX form");
        }
    }

    /// <summary>The exception for a layer the exporter cannot express.</summary>
    public static NotSupportedException Unsupported(string path, nn.Module module, string what) =>
        new($"ONNX export: layer '{path}' ({module.GetType().Name}) has {what}; the model cannot be exported.");

    // Conv and ConvTranspose keep TorchSharp's weight layout ([out, in/groups, k…] and [in, out/groups, k…], as ONNX).
    private static string Conv(OnnxGraph g, Convolution c, string input, string path)
    {
        if (c.padding is null) throw Unsupported(path, c, $"padding '{c.padding_type}' (only explicit padding is exported)");
        if (c.padding_mode != PaddingModes.Zeros) throw Unsupported(path, c, $"padding mode {c.padding_mode}");
        string w = g.Initializer($"{path}.weight", c.weight);
        string[] inputs = c.bias is { } b ? [input, w, g.Initializer($"{path}.bias", b)] : [input, w];
        var attributes = new List<(string, object)>
        {
            ("kernel_shape", c.kernel_size), ("strides", c.stride), ("pads", Pads(c.padding, c.kernel_size.Length)), ("dilations", c.dilation), ("group", c.groups),
        };
        if (c.transposed) attributes.Add(("output_padding", c.output_padding ?? new long[c.kernel_size.Length]));
        return g.Node(c.transposed ? "ConvTranspose" : "Conv", inputs, path, [.. attributes]);
    }

    private static string BatchNorm(OnnxGraph g, NormBase bn, string input, string path)
    {
        if (bn.running_mean is null || bn.running_var is null) throw Unsupported(path, bn, "no running statistics");
        long n = bn.num_features;
        string scale = bn.weight is { } w ? g.Initializer($"{path}.weight", w) : g.Initializer($"{path}.weight", Enumerable.Repeat(1f, (int)n).ToArray(), [n]);
        string bias = bn.bias is { } b ? g.Initializer($"{path}.bias", b) : g.Initializer($"{path}.bias", new float[n], [n]);
        return g.Node("BatchNormalization", [input, scale, bias, g.Initializer($"{path}.running_mean", bn.running_mean), g.Initializer($"{path}.running_var", bn.running_var)],
            path, ("epsilon", bn.eps));
    }

    // TorchSharp keeps one padding per spatial dimension (or one for all); ONNX wants begin and end for each.
    private static long[] Pads(long[]? padding, int dims)
    {
        var p = padding is null || padding.Length == 0 ? new long[dims] : padding.Length == 1 ? Enumerable.Repeat(padding[0], dims).ToArray() : padding;
        return [.. p, .. p];
    }

    private static long[] Ones(int n) => Enumerable.Repeat(1L, n).ToArray();
}
