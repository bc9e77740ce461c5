using System.Globalization;
using System.Text;
using Google.Protobuf;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Persistence;
using Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Microsoft.ML.DeepExtensions
{
    /// <summary>Options for <see cref="DeepTransformer.ExportOnnx(string, OnnxExportOptions?)"/>.</summary>
    public sealed class OnnxExportOptions
    {
        /// <summary>The ONNX operator set (default 17, the first with LayerNormalization; 17–21 are accepted).</summary>
        public int OpsetVersion { get; set; } = 17;

        /// <summary>The graph's name (default: the family and task, e.g. "MLP multiclass").</summary>
        public string? GraphName { get; set; }

        internal void Validate()
        {
            if (OpsetVersion is < 17 or > 21)
                throw new ArgumentOutOfRangeException(nameof(OpsetVersion), OpsetVersion, "The exporter writes operator sets 17 to 21 (LayerNormalization needs 17).");
        }
    }
}

namespace Microsoft.ML.DeepExtensions.Onnx
{
    /// <summary>
    /// Turns a fitted model into one ONNX model: the feature input, what the model does around the network
    /// (standardisation, regression target scale) and the network itself, then ML.NET's output columns with the
    /// meaning our transformer gives them — binary: Score (logit), Probability (clipped sigmoid, as scored here),
    /// PredictedLabel (bool); multiclass: Score (softmax), PredictedLabel (1-based key, uint32); regression: Score.
    /// </summary>
    internal static class OnnxExporter
    {
        /// <summary>The IR version written (ONNX 1.12, the release of opset 17; every ONNX Runtime since 1.12 reads it).</summary>
        public const long IrVersion = 8;

        public static ModelProto Build(ModelManifest m, DeepNetwork network, OnnxExportOptions o)
        {
            o.Validate();
            var g = new OnnxGraph();
            foreach (var name in new[] { m.FeatureColumnName, ColumnNames.Score, ColumnNames.Probability, ColumnNames.PredictedLabel, m.FeaturesColumnName }.Distinct())
                if (name is not null) g.Reserve(name);
            var (inputs, floats) = m.Spec.Input.OnnxInput(g, m.FeatureColumnName);
            g.Graph.Input.Add(inputs);
            bool embed = m.FeaturesColumnName is not null;
            string y = network.ExportOnnx(g, floats, embed, m.Task == DeepTask.Regression);

            // Outputs: the value, its type and its shape without the batch dimension.
            var outputs = new List<(string Column, string Value, DataType Type, long[] Shape)>();
            if (embed)
                outputs.Add((m.FeaturesColumnName!, y, DataType.Float, [m.FeaturesSize]));
            else switch (m.Task)
            {
                case DeepTask.BinaryClassification:
                {
                    string score = g.Reshape(y, [-1], "logit");
                    outputs.Add((ColumnNames.Score, score, DataType.Float, []));
                    if (m.HasProbability)
                    {
                        // As OutputColumns.Probability: the logistic kept within [1e-7, 1 − 1e-7].
                        string p = g.Node("Clip", [g.Node("Sigmoid", [score], "sigmoid"), g.Constant("p_min", 1e-7f), g.Constant("p_max", (float)(1 - 1e-7))], "probability");
                        outputs.Add((ColumnNames.Probability, p, DataType.Float, []));
                    }
                    outputs.Add((ColumnNames.PredictedLabel, g.Node("Greater", [score, g.Constant("zero", 0f)], "positive"), DataType.Bool, []));
                    break;
                }
                case DeepTask.MulticlassClassification:
                {
                    int k = m.ClassCount, w = m.LabelWidth;
                    // Softmax per step; PredictedLabel = 1 + the first index of the largest probability (as scored here).
                    string probs = g.Softmax(w > 1 ? g.Reshape(y, [-1, w, k], "steps") : y, -1, "probabilities");
                    string key = g.Node("Cast", [g.Add(g.Node("ArgMax", [probs], "argmax", ("axis", -1L), ("keepdims", 0L)), g.Ints("one", 1))], "key", ("to", (long)DataType.Uint32));
                    outputs.Add((ColumnNames.Score, w > 1 ? g.Reshape(probs, [-1, (long)w * k], "scores") : probs, DataType.Float, [(long)w * k]));
                    outputs.Add((ColumnNames.PredictedLabel, key, DataType.Uint32, w > 1 ? [w] : []));
                    break;
                }
                default:
                    int n = m.Spec.OutputSize;
                    outputs.Add((ColumnNames.Score, n > 1 ? y : g.Reshape(y, [-1], "value"), DataType.Float, n > 1 ? [n] : []));
                    break;
            }

            foreach (var (column, value, type, shape) in outputs)
            {
                g.Graph.Node.Add(new NodeProto { OpType = "Identity", Name = g.Fresh($"output_{column}"), Input = { value }, Output = { column } });
                g.Graph.Output.Add(OnnxGraph.Value(column, type, [null, .. shape.Select(d => (long?)d)]));
            }

            var metadata = new List<(string, string)> { ("task", m.Task.ToString()) };
            if (m.LabelKeyValues is { } kv)
                metadata.Add(("label_key_values", string.Join("\n", kv.Values)));   // PredictedLabel k is line k
            return Wrap(g, o, $"{m.Spec.Family} {m.Task}", m, metadata);
        }

        /// <summary>The model around a finished graph: IR version, opset, producer, and metadata (family, feature column, ...).</summary>
        public static ModelProto Wrap(OnnxGraph g, OnnxExportOptions o, string name, ModelManifest m, IEnumerable<(string Key, string Value)> metadata)
        {
            g.Graph.Name = o.GraphName ?? name;
            g.Graph.DocString = $"Exported by Microsoft.ML.DeepExtensions from a {m.Spec.Family} model trained by {m.Trainer}.";
            var model = new ModelProto
            {
                IrVersion = IrVersion,
                ProducerName = "Microsoft.ML.DeepExtensions",
                ProducerVersion = VersionStamp.Current().Library,
                Graph = g.Graph,
                OpsetImport = { new OperatorSetIdProto { Domain = "", Version = o.OpsetVersion } },
            };
            foreach (var (key, value) in metadata.Prepend(("feature_column", m.FeatureColumnName)).Prepend(("family", m.Spec.Family)))
                model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
            return model;
        }

        /// <summary>Throws unless <paramref name="stream"/> can be written (checked before any export work).</summary>
        public static void CheckWritable(Stream stream)
        {
            ArgumentNullException.ThrowIfNull(stream);
            if (!stream.CanWrite) throw new ArgumentException("The stream is not writable: ONNX export needs a writable stream.", nameof(stream));
        }

        /// <summary>Writes <paramref name="model"/> to <paramref name="stream"/>.</summary>
        public static void Write(ModelProto model, Stream stream)
        {
            model.WriteTo(stream);
            stream.Flush();
        }

        /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> atomically (a temporary file, then moved).</summary>
        public static void Write(ModelProto model, string path) =>
            AtomicFile.Write(path, tmp => { using var file = File.Create(tmp); Write(model, file); });

        /// <summary>
        /// Writes a Triton / KServe model repository entry: <c>repository/name/config.pbtxt</c> (inputs, outputs, dynamic
        /// batching) and <c>repository/name/1/model.onnx</c>.
        /// </summary>
        public static string WriteModelRepository(ModelProto model, string repository, string name, int maxBatchSize)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(name);
            if (name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 || name.Contains('/'))
                throw new ArgumentException($"Model name '{name}' is not a valid folder name.", nameof(name));
            if (maxBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(maxBatchSize), maxBatchSize, "Triton's max_batch_size must be at least 1 for a batching model.");
            string dir = Path.Combine(repository, name);
            Write(model, Path.Combine(dir, "1", "model.onnx"));
            var sb = new StringBuilder();
            sb.AppendLine(CultureInfo.InvariantCulture, $"name: \"{name}\"");
            sb.AppendLine("platform: \"onnxruntime_onnx\"");
            sb.AppendLine(CultureInfo.InvariantCulture, $"max_batch_size: {maxBatchSize}");
            Tensors(sb, "input", model.Graph.Input);
            Tensors(sb, "output", model.Graph.Output);
            sb.AppendLine("dynamic_batching { }");
            File.WriteAllText(Path.Combine(dir, "config.pbtxt"), sb.ToString());
            return dir;
        }

        // Triton leaves the batch dimension out of dims; a [N] tensor is dims [1] reshaped to [] for the model.
        private static void Tensors(StringBuilder sb, string kind, IEnumerable<ValueInfoProto> values)
        {
            var items = values.Select(v =>
            {
                var dims = v.Type.TensorType.Shape.Dim.Skip(1).Select(d => d.DimParam.Length > 0 ? -1 : d.DimValue).ToArray();
                string type = (DataType)v.Type.TensorType.ElemType switch
                {
                    DataType.Float => "TYPE_FP32", DataType.Int64 => "TYPE_INT64", DataType.Uint32 => "TYPE_UINT32", DataType.Bool => "TYPE_BOOL",
                    var t => throw new NotSupportedException($"No Triton type for ONNX {t}."),
                };
                string shape = dims.Length == 0 ? "dims: [ 1 ] reshape: { shape: [ ] }" : $"dims: [ {string.Join(", ", dims)} ]";
                return $"  {{ name: \"{v.Name}\" data_type: {type} {shape} }}";
            });
            sb.AppendLine($"{kind} [");
            sb.AppendLine(string.Join(",\n", items));
            sb.AppendLine("]");
        }
    }
}
