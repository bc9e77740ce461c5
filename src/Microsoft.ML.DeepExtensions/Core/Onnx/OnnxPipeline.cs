using Microsoft.ML.DeepExtensions.Persistence;
using Onnx;

namespace Microsoft.ML.DeepExtensions.Onnx;

/// <summary>
/// Exports a fitted chain that ends in a deep model — e.g. OneHotEncoding → Concatenate → NormalizeMeanVariance → MLP —
/// as one ONNX model: the ML.NET part through ML.NET's own converter (<c>mlContext.Model.ConvertToOnnx</c>), the deep
/// model through <see cref="OnnxExporter"/>, joined where the deep model reads its feature column.
/// </summary>
internal static class OnnxPipeline
{
    /// <summary>The prefix the deep model's value names get in the joined graph, so they never meet ML.NET's.</summary>
    private const string Prefix = "deep/";

    public static ModelProto Build(MLContext ml, ITransformer model, IDataView sample, OnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(sample);
        var parts = Flatten(model).ToList();
        int at = parts.FindLastIndex(p => p is DeepTransformer);
        if (at < 0)
            throw new ArgumentException($"The model ({string.Join(" → ", parts.Select(p => p.GetType().Name))}) holds no deep model of this library; export ML.NET-only chains with mlContext.Model.ConvertToOnnx.", nameof(model));
        if (at < parts.Count - 1)
            throw new NotSupportedException($"ONNX export: the chain continues after the deep model with {string.Join(", ", parts.Skip(at + 1).Select(p => p.GetType().Name))}; export the chain up to the deep model (its outputs are Score, Probability and PredictedLabel).");
        var deep = (DeepTransformer)parts[at];
        var ours = deep.BuildOnnx(options);
        if (at == 0) return ours;

        var upstream = parts.Take(at).ToList();
        var prefixModel = new TransformerChain<ITransformer>([.. upstream]);
        string feature = deep.Manifest.FeatureColumnName;
        ModelProto theirs;
        using (var stream = new MemoryStream())
        {
            // ML.NET's converter does not fail on a transform without an ONNX form: it logs a warning and starts the graph
            // after it, so the model would silently take that transform's output as input. Its log names the transform.
            var stopped = new List<string>();
            EventHandler<LoggingEventArgs> listen = (_, e) =>
            {
                if (e.Message.Contains("cannot save itself as ONNX", StringComparison.Ordinal)) lock (stopped) stopped.Add(e.Message);
            };
            ml.Log += listen;
            try
            {
                // A cached view is where the converter's walk back through the data ends, so the sample's own lineage
                // (a split's filter, a loader) is not mistaken for a transform of the chain.
                ml.Model.ConvertToOnnx(prefixModel, ml.Data.Cache(ml.Data.TakeRows(sample, 16)), stream, feature);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw Unconvertible(stopped, upstream, e);
            }
            finally
            {
                ml.Log -= listen;
            }
            if (stopped.Count > 0) throw Unconvertible(stopped, upstream, null);
            stream.Position = 0;
            theirs = ModelProto.Parser.ParseFrom(stream);
        }
        var featureOutput = theirs.Graph.Output.FirstOrDefault(o => o.Name == feature || o.Name == $"{feature}.output")
            ?? throw new InvalidOperationException($"ONNX export: ML.NET's converter did not output the feature column '{feature}' (outputs: {string.Join(", ", theirs.Graph.Output.Select(o => o.Name))}).");
        return Join(theirs, featureOutput.Name, ours);
    }

    private static NotSupportedException Unconvertible(List<string> stopped, List<ITransformer> upstream, Exception? inner)
    {
        static string Name(Type t) => t.Name.Split('`')[0];
        string chain = string.Join(" → ", upstream.Select(t => Name(t.GetType())));
        return stopped.Count > 0
            ? new NotSupportedException($"ONNX export: an ML.NET transform before the deep model has no ONNX form ({stopped[0].Split(']').Last().Trim()}; chain: {chain}). " +
                "Apply it before the data reaches the exported model, or export the deep model alone with DeepTransformer.ExportOnnx.", inner)
            : new NotSupportedException($"ONNX export: ML.NET's converter could not export the transforms before the deep model ({chain}): {inner?.Message}", inner);
    }

    /// <summary>
    /// Keeps only what the graph's outputs need: ML.NET's converter passes every column of the sample through (the label
    /// too), so nodes, initializers and inputs nothing reads are dropped.
    /// </summary>
    private static void Prune(GraphProto graph)
    {
        var needed = graph.Output.Select(o => o.Name).ToHashSet();
        var kept = new List<NodeProto>();
        foreach (var node in graph.Node.Reverse())
        {
            if (!node.Output.Any(needed.Contains)) continue;
            kept.Add(node);
            needed.UnionWith(node.Input.Where(i => i.Length > 0));
        }
        kept.Reverse();
        graph.Node.Clear();
        graph.Node.Add(kept);
        foreach (var init in graph.Initializer.Where(i => !needed.Contains(i.Name)).ToList()) graph.Initializer.Remove(init);
        foreach (var input in graph.Input.Where(i => !needed.Contains(i.Name)).ToList()) graph.Input.Remove(input);
    }

    private static IEnumerable<ITransformer> Flatten(ITransformer t) =>
        t is IEnumerable<ITransformer> chain ? chain.SelectMany(Flatten) : [t];

    /// <summary>Feeds <paramref name="ours"/>' single input from <paramref name="theirs"/>' value <paramref name="feature"/>; the result outputs what ours does.</summary>
    private static ModelProto Join(ModelProto theirs, string feature, ModelProto ours)
    {
        string input = ours.Graph.Input.Single().Name;
        var outputs = ours.Graph.Output.Select(o => o.Name).ToHashSet();
        string Rename(string name) => name.Length == 0 || outputs.Contains(name) ? name : name == input ? feature : Prefix + name;

        var graph = theirs.Graph.Clone();
        graph.Output.Clear();
        // ML.NET declares shapes for its intermediate values that disagree with what they are ([-1, k] for a one-hot
        // that is [-1, 1, k]): ONNX Runtime warns and falls back. They are optional; it infers them itself.
        graph.ValueInfo.Clear();
        foreach (var init in ours.Graph.Initializer)
        {
            var copy = init.Clone();
            copy.Name = Rename(copy.Name);
            graph.Initializer.Add(copy);
        }
        foreach (var node in ours.Graph.Node)
        {
            var copy = node.Clone();
            copy.Name = Prefix + copy.Name;
            for (int i = 0; i < copy.Input.Count; i++) copy.Input[i] = Rename(copy.Input[i]);
            for (int i = 0; i < copy.Output.Count; i++) copy.Output[i] = Rename(copy.Output[i]);
            graph.Node.Add(copy);
        }
        graph.Output.Add(ours.Graph.Output);
        graph.Name = ours.Graph.Name;
        Prune(graph);

        // One operator set per domain: the default domain at the newer of the two versions (the exporter needs 17 or
        // later; ML.NET's converter writes older ones, whose operators it uses read the same there); ai.onnx.ml as ML.NET set it.
        var merged = theirs.OpsetImport.Where(o => o.Domain is not ("" or "ai.onnx")).Select(o => o.Clone()).ToList();
        long version = theirs.OpsetImport.Concat(ours.OpsetImport).Where(o => o.Domain is "" or "ai.onnx").Max(o => o.Version);
        merged.Add(new OperatorSetIdProto { Domain = "", Version = version });
        var model = ours.Clone();
        model.Graph = graph;
        model.IrVersion = Math.Max(theirs.IrVersion, ours.IrVersion);
        model.OpsetImport.Clear();
        model.OpsetImport.Add(merged);
        model.MetadataProps.Add(new StringStringEntryProto { Key = "upstream", Value = "ML.NET's ONNX converter (Microsoft.ML.OnnxConverter)" });
        return model;
    }
}
