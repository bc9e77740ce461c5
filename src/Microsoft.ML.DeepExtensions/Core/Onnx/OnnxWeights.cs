using System.Runtime.InteropServices;
using Google.Protobuf;
using TorchSharp;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Microsoft.ML.DeepExtensions;

/// <summary>One initializer (a stored weight) of an ONNX model: its name, shape and values as float32.</summary>
/// <param name="Name">The initializer's name in the graph.</param>
/// <param name="Shape">Its dimensions.</param>
/// <param name="Values">Its values in row-major order, converted to float32.</param>
public sealed record OnnxInitializer(string Name, long[] Shape, float[] Values);

/// <summary>One node of an ONNX graph, as far as importing weights needs it: what it computes and what it connects.</summary>
/// <param name="OpType">The operator ("Conv", "MatMul", ...).</param>
/// <param name="Name">The node's name (may be empty).</param>
/// <param name="Inputs">Names of its inputs (values or initializers).</param>
/// <param name="Outputs">Names of its outputs.</param>
public sealed record OnnxNode(string OpType, string Name, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs);

/// <summary>An ONNX model's weights and its nodes in graph order — enough to name weights that an exporter left unnamed.</summary>
/// <param name="Initializers">Every initializer by name.</param>
/// <param name="Nodes">The nodes, in the order the graph lists them (topological).</param>
public sealed record OnnxModelContents(IReadOnlyDictionary<string, OnnxInitializer> Initializers, IReadOnlyList<OnnxNode> Nodes);

/// <summary>
/// Reads the weights of an ONNX model and loads them into a TorchSharp module by an explicit name map — the base for
/// importing pretrained networks, and how an exported model's weights are read back.
/// </summary>
public static class OnnxWeights
{
    /// <summary>Reads every initializer of the ONNX model at <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not an ONNX model, or a tensor cannot be read.</exception>
    public static IReadOnlyDictionary<string, OnnxInitializer> Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX file '{path}' does not exist.", path);
        using var file = File.OpenRead(path);
        try
        {
            return Read(file);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}': {e.Message}", e);
        }
    }

    /// <summary>Reads every initializer of the ONNX model in <paramref name="stream"/>.</summary>
    /// <exception cref="InvalidDataException">The stream does not hold an ONNX model, or a tensor cannot be read.</exception>
    public static IReadOnlyDictionary<string, OnnxInitializer> Read(Stream stream) => ReadModel(stream).Initializers;

    /// <summary>Reads every initializer and node of the ONNX model in <paramref name="stream"/>.</summary>
    /// <exception cref="InvalidDataException">The stream does not hold an ONNX model, or a tensor cannot be read.</exception>
    public static OnnxModelContents ReadModel(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        global::Onnx.ModelProto model;
        try
        {
            model = global::Onnx.ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"not an ONNX model (it is not a protobuf ModelProto: {e.Message}).", e);
        }
        if (model.IrVersion <= 0 || model.Graph is null || model.OpsetImport.Count == 0)
            throw new InvalidDataException("not an ONNX model (no IR version, graph or operator set).");
        var initializers = new Dictionary<string, OnnxInitializer>(StringComparer.Ordinal);
        foreach (var t in model.Graph.Initializer) initializers[t.Name] = Convert(t);   // some exporters list an initializer twice
        var nodes = model.Graph.Node.Select(n => new OnnxNode(n.OpType, n.Name, n.Input.ToArray(), n.Output.ToArray())).ToArray();
        return new OnnxModelContents(initializers, nodes);
    }

    private static OnnxInitializer Convert(global::Onnx.TensorProto t)
    {
        if (t.DataLocation == global::Onnx.TensorProto.Types.DataLocation.External)
            throw new InvalidDataException($"initializer '{t.Name}' keeps its data in an external file, which is not read.");
        long count = t.Dims.Aggregate(1L, (a, d) => a * d);
        var raw = t.RawData.Span;
        float[] values = (DataType)t.DataType switch
        {
            DataType.Float => raw.Length > 0 ? MemoryMarshal.Cast<byte, float>(raw).ToArray() : t.FloatData.ToArray(),
            DataType.Double => raw.Length > 0 ? MemoryMarshal.Cast<byte, double>(raw).ToArray().Select(v => (float)v).ToArray() : t.DoubleData.Select(v => (float)v).ToArray(),
            DataType.Int64 => raw.Length > 0 ? MemoryMarshal.Cast<byte, long>(raw).ToArray().Select(v => (float)v).ToArray() : t.Int64Data.Select(v => (float)v).ToArray(),
            DataType.Int32 => raw.Length > 0 ? MemoryMarshal.Cast<byte, int>(raw).ToArray().Select(v => (float)v).ToArray() : t.Int32Data.Select(v => (float)v).ToArray(),
            var other => throw new InvalidDataException($"initializer '{t.Name}' has element type {other}; float, double, int32 and int64 are read."),
        };
        if (values.Length != count)
            throw new InvalidDataException($"initializer '{t.Name}' has {values.Length} values but its shape [{string.Join(", ", t.Dims)}] needs {count}.");
        return new OnnxInitializer(t.Name, t.Dims.ToArray(), values);
    }

    /// <summary>
    /// Copies initializers into <paramref name="module"/>'s parameters and buffers. <paramref name="nameMap"/> maps a state
    /// dict entry (e.g. "body.dense1.weight") to the initializer that holds it; every mapped entry must exist on both
    /// sides with the same shape, and every parameter of the module must be mapped unless
    /// <paramref name="allowUnmapped"/> (fine-tuning a new head).
    /// </summary>
    /// <exception cref="ArgumentException">A name is missing on either side, a shape differs, or a parameter is left unmapped (each named).</exception>
    public static void LoadInto(nn.Module module, IReadOnlyDictionary<string, OnnxInitializer> initializers,
        IReadOnlyDictionary<string, string> nameMap, bool allowUnmapped = false)
    {
        ArgumentNullException.ThrowIfNull(module);
        var state = module.state_dict();
        foreach (var (entry, source) in nameMap)
        {
            if (!state.TryGetValue(entry, out var target))
                throw new ArgumentException($"The module has no parameter or buffer '{entry}' (name map entry for initializer '{source}'). It has: {string.Join(", ", state.Keys.Take(20))}{(state.Count > 20 ? ", ..." : "")}.", nameof(nameMap));
            if (!initializers.TryGetValue(source, out var init))
                throw new ArgumentException($"The ONNX model has no initializer '{source}' (mapped to '{entry}').", nameof(nameMap));
            if (!init.Shape.SequenceEqual(target.shape))
                throw new ArgumentException($"Initializer '{source}' has shape [{string.Join(", ", init.Shape)}] but '{entry}' is [{string.Join(", ", target.shape)}].", nameof(nameMap));
        }
        if (!allowUnmapped)
        {
            var unmapped = module.named_parameters().Select(p => p.name).Where(n => !nameMap.ContainsKey(n)).ToList();
            if (unmapped.Count > 0)
                throw new ArgumentException($"Parameters not in the name map: {string.Join(", ", unmapped)} (pass allowUnmapped: true to keep their current values).", nameof(nameMap));
        }
        using var _ = no_grad();
        foreach (var (entry, source) in nameMap)
        {
            var target = state[entry];
            using var values = tensor(initializers[source].Values, initializers[source].Shape);
            using var typed = values.to_type(target.dtype).to(target.device);
            target.copy_(typed);
        }
    }

    /// <summary>The identity name map for a model exported by this library: every state dict entry that the file holds under the same name.</summary>
    public static IReadOnlyDictionary<string, string> SameNames(nn.Module module, IReadOnlyDictionary<string, OnnxInitializer> initializers) =>
        module.state_dict().Keys.Where(initializers.ContainsKey).ToDictionary(k => k, k => k);
}
