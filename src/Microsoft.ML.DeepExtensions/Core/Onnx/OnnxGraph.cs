using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Onnx;

/// <summary>
/// A module that knows how to write itself as ONNX nodes. The exporter handles TorchSharp's own layers (Linear, Conv2d,
/// BatchNorm, pooling, activations, Sequential, ...); a family's own module implements this interface in the family's
/// folder, so the exporter never names a family.
/// </summary>
internal interface IOnnxExportable
{
    /// <summary>Appends the module's computation on <paramref name="input"/> to <paramref name="graph"/>; returns the output's name.</summary>
    /// <param name="graph">The graph being built.</param>
    /// <param name="input">The name of the input value (its shape is what <c>forward</c> receives, batch first).</param>
    /// <param name="path">The module's path in the network ("body.conv1"): prefix for its initializers, and for messages.</param>
    string ExportOnnx(OnnxGraph graph, string input, string path);
}

/// <summary>
/// Builds one ONNX graph: unique value names, initializers from TorchSharp tensors (named by their module path, so
/// they map one-to-one onto the state dict), nodes with attributes, constants.
/// </summary>
internal sealed class OnnxGraph
{
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public GraphProto Graph { get; } = new() { Name = "Microsoft.ML.DeepExtensions" };

    /// <summary>A value name not used yet, based on <paramref name="hint"/>.</summary>
    public string Fresh(string hint)
    {
        string name = hint;
        for (int i = 1; !_names.Add(name); i++) name = $"{hint}_{i}";
        return name;
    }

    /// <summary>Claims <paramref name="name"/> (a graph input or output) exactly; throws if a value already has it.</summary>
    public string Reserve(string name) => _names.Add(name) ? name
        : throw new InvalidOperationException($"ONNX export: the name '{name}' is used twice in the graph (a feature column named like an output?).");

    /// <summary>Adds <paramref name="tensor"/> (any float/integer dtype, stored as float32 or int64) as an initializer named <paramref name="name"/>.</summary>
    public string Initializer(string name, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var t = tensor.detach().cpu().contiguous();
        bool integral = t.dtype is ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int16 or ScalarType.Int8 or ScalarType.Byte;
        return integral
            ? Initializer(name, t.to_type(ScalarType.Int64).data<long>().ToArray(), t.shape)
            : Initializer(name, t.to_type(ScalarType.Float32).data<float>().ToArray(), t.shape);
    }

    /// <summary>Adds a float32 initializer.</summary>
    public string Initializer(string name, float[] values, long[] shape) => AddTensor(name, TensorProto.Types.DataType.Float, MemoryMarshal.AsBytes(values.AsSpan()), shape);

    /// <summary>Adds an int64 initializer.</summary>
    public string Initializer(string name, long[] values, long[] shape) => AddTensor(name, TensorProto.Types.DataType.Int64, MemoryMarshal.AsBytes(values.AsSpan()), shape);

    /// <summary>A float32 constant (an initializer with a fresh name).</summary>
    public string Constant(string hint, params float[] values) => Initializer(Fresh(hint), values, values.Length == 1 ? [] : [values.Length]);

    /// <summary>An int64 constant of shape [values.Length] (shapes, axes, indices).</summary>
    public string Ints(string hint, params long[] values) => Initializer(Fresh(hint), values, [values.Length]);

    /// <summary>An int32 scalar constant.</summary>
    public string Int32(string hint, int value)
    {
        var name = Fresh(hint);
        Graph.Initializer.Add(new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int32, Int32Data = { value } });
        return name;
    }

    /// <summary>An int64 scalar constant (an index that drops its axis in Gather).</summary>
    public string Scalar(string hint, long value) => Initializer(Fresh(hint), [value], []);

    private string AddTensor(string name, TensorProto.Types.DataType type, ReadOnlySpan<byte> data, long[] shape)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw tensor data is little-endian.");
        name = Fresh(name);
        var proto = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(data) };
        proto.Dims.AddRange(shape);
        Graph.Initializer.Add(proto);
        return name;
    }

    /// <summary>Adds a node with one output; returns the output's name.</summary>
    public string Node(string op, string[] inputs, string hint, params (string Name, object Value)[] attributes) =>
        Node(op, inputs, [hint], attributes)[0];

    /// <summary>Adds a node with several outputs (an empty hint leaves that output unused); returns their names.</summary>
    public string[] Node(string op, string[] inputs, string[] outputHints, params (string Name, object Value)[] attributes)
    {
        var outputs = outputHints.Select(h => h.Length == 0 ? "" : Fresh(h)).ToArray();
        var node = new NodeProto { OpType = op, Name = Fresh($"{op}_{outputs.FirstOrDefault(o => o.Length > 0)}") };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        foreach (var (name, value) in attributes) node.Attribute.Add(Attribute(name, value));
        Graph.Node.Add(node);
        return outputs;
    }

    private static AttributeProto Attribute(string name, object value)
    {
        var a = new AttributeProto { Name = name };
        switch (value)
        {
            case int i: a.Type = AttributeProto.Types.AttributeType.Int; a.I = i; break;
            case long l: a.Type = AttributeProto.Types.AttributeType.Int; a.I = l; break;
            case bool b: a.Type = AttributeProto.Types.AttributeType.Int; a.I = b ? 1 : 0; break;
            case float f: a.Type = AttributeProto.Types.AttributeType.Float; a.F = f; break;
            case double d: a.Type = AttributeProto.Types.AttributeType.Float; a.F = (float)d; break;
            case string s: a.Type = AttributeProto.Types.AttributeType.String; a.S = ByteString.CopyFromUtf8(s); break;
            case long[] ls: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ls); break;
            case int[] ints: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ints.Select(x => (long)x)); break;
            case float[] fs: a.Type = AttributeProto.Types.AttributeType.Floats; a.Floats.AddRange(fs); break;
            case TensorProto t: a.Type = AttributeProto.Types.AttributeType.Tensor; a.T = t; break;
            default: throw new ArgumentException($"ONNX attribute '{name}' has an unsupported type {value.GetType().Name}.");
        }
        return a;
    }

    /// <summary>
    /// A graph input or output: element type and shape. A null dimension is symbolic: the first is the batch <c>N</c>,
    /// later ones are named by <paramref name="symbols"/> (default <c>T</c>, a sequence length).
    /// </summary>
    public static ValueInfoProto Value(string name, TensorProto.Types.DataType type, long?[] shape, params string[] symbols)
    {
        var tensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = new TensorShapeProto() };
        int symbol = 0;
        for (int i = 0; i < shape.Length; i++)
            tensorType.Shape.Dim.Add(shape[i] is long v ? new TensorShapeProto.Types.Dimension { DimValue = v }
                : new TensorShapeProto.Types.Dimension { DimParam = i == 0 ? "N" : symbol < symbols.Length ? symbols[symbol++] : "T" });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
    }

    /// <summary>The size of <paramref name="x"/>'s axis <paramref name="axis"/> as an int64 [1] (the batch for axis 0).</summary>
    public string Dimension(string x, long axis, string hint) =>
        Node("Slice", [Node("Shape", [x], $"{hint}_shape"), Ints("start", axis), Ints("end", axis + 1)], hint);

    /// <summary><paramref name="value"/> broadcast to [<paramref name="batch"/>, <paramref name="rest"/>…] (batch from <see cref="Dimension"/>).</summary>
    public string ExpandToBatch(string value, string batch, long[] rest, string hint) =>
        Node("Expand", [value, Node("Concat", [batch, Ints($"{hint}_dims", rest)], $"{hint}_shape", ("axis", 0L))], hint);

    /// <summary>
    /// Cuts axis 1 of <paramref name="x"/> to at most <paramref name="length"/> and pads it with zeros to exactly that
    /// (rows of any length become the fixed width the network was trained on); <paramref name="unit"/> values per step.
    /// </summary>
    public string FitLength(string x, long length, string hint, long unit = 1)
    {
        string cut = Node("Slice", [x, Ints("start", 0), Ints("end", length * unit), Ints("axes", 1)], $"{hint}_cut");
        string width = Dimension(cut, 1, $"{hint}_width");
        string pads = Node("Concat", [Ints("pads_begin", 0, 0, 0), Sub(Ints("length", length * unit), width, $"{hint}_missing")], $"{hint}_pads", ("axis", 0L));
        return Node("Pad", [cut, pads], $"{hint}_fitted");
    }

    // Shorthands for common nodes.
    public string Add(string a, string b, string hint = "add") => Node("Add", [a, b], hint);
    public string Sub(string a, string b, string hint = "sub") => Node("Sub", [a, b], hint);
    public string Mul(string a, string b, string hint = "mul") => Node("Mul", [a, b], hint);
    public string Div(string a, string b, string hint = "div") => Node("Div", [a, b], hint);
    public string MatMul(string a, string b, string hint = "matmul") => Node("MatMul", [a, b], hint);
    public string Reshape(string x, long[] shape, string hint = "reshape") => Node("Reshape", [x, Ints("shape", shape)], hint);
    public string Transpose(string x, long[] perm, string hint = "transpose") => Node("Transpose", [x], hint, ("perm", perm));
    public string Softmax(string x, long axis, string hint = "softmax") => Node("Softmax", [x], hint, ("axis", axis));

    /// <summary>
    /// x @ Wᵀ + b over the last dimension of any rank. The weight is stored as TorchSharp holds it ([out, in], named
    /// <c>path.weight</c>), so initializers map one-to-one onto the state dict; ONNX Runtime folds the transpose.
    /// </summary>
    public string Linear(string x, Tensor weight, Tensor? bias, string path)
    {
        string w = Initializer($"{path}.weight", weight);
        var y = MatMul(x, Transpose(w, [1, 0], $"{path}.weight_t"), path);
        return bias is null ? y : Add(y, Initializer($"{path}.bias", bias), path);
    }

    /// <summary>Layer normalisation over the last dimension (LayerNormalization, opset 17).</summary>
    public string LayerNorm(string x, Tensor? weight, Tensor? bias, double eps, string path)
    {
        if (weight is null) throw new NotSupportedException($"ONNX export: layer '{path}' (LayerNorm) has no affine weight.");
        string[] inputs = bias is null ? [x, Initializer($"{path}.weight", weight)] : [x, Initializer($"{path}.weight", weight), Initializer($"{path}.bias", bias)];
        return Node("LayerNormalization", inputs, path, ("axis", -1L), ("epsilon", eps));
    }

    /// <summary>ln(1 + eˣ).</summary>
    public string Softplus(string x, string hint = "softplus") => Node("Softplus", [x], hint);

    /// <summary>GELU: x·Φ(x) with the error function (exact), or PyTorch's tanh approximation.</summary>
    public string Gelu(string x, string hint = "gelu", bool tanh = false)
    {
        string inner = tanh
            ? Node("Tanh", [Mul(Add(x, Mul(Constant("gelu_c", 0.044715f), Node("Pow", [x, Constant("three", 3f)], hint))), Constant("sqrt_2_over_pi", (float)Math.Sqrt(2 / Math.PI)))], hint)
            : Node("Erf", [Div(x, Constant("sqrt2", (float)Math.Sqrt(2)))], hint);
        return Mul(Mul(x, Constant("half", 0.5f)), Add(inner, Constant("one", 1f)), hint);
    }

    /// <summary>One of the seed's activations, exactly: unit step (½ at 0) and sign from Sign, piecewise linear as a clip.</summary>
    public string Activation(DeepExtensions.Activation activation, string x, string hint) => activation switch
    {
        DeepExtensions.Activation.Linear => x,
        DeepExtensions.Activation.UnitStep => Mul(Add(Node("Sign", [x], hint), Constant("one", 1f)), Constant("half", 0.5f), hint),
        DeepExtensions.Activation.Sign => Node("Sign", [x], hint),
        DeepExtensions.Activation.PiecewiseLinear => Node("Clip", [Add(x, Constant("half", 0.5f)), Constant("zero", 0f), Constant("one", 1f)], hint),
        DeepExtensions.Activation.Logistic => Node("Sigmoid", [x], hint),
        DeepExtensions.Activation.Tanh => Node("Tanh", [x], hint),
        DeepExtensions.Activation.Relu => Node("Relu", [x], hint),
        DeepExtensions.Activation.LeakyRelu => Node("LeakyRelu", [x], hint, ("alpha", 0.01f)),
        DeepExtensions.Activation.Softplus => Softplus(x, hint),
        DeepExtensions.Activation.Gelu => Gelu(x, hint),
        _ => Softmax(x, -1, hint),
    };
}
