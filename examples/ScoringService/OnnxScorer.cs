using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ScoringService;

/// <summary>
/// Scores JSON rows with an exported <c>.onnx</c> file (<c>model.ExportOnnx</c> or <c>ml.Deep().ExportOnnx(chain, ...)</c>)
/// through ONNX Runtime, whose session is thread-safe and batches natively: a request's rows are one call. The fields a
/// request must carry are the graph's inputs — a float [N, d] input is an array of d numbers (a number when d = 1), a
/// string [N, 1] input a string — checked exactly as for a saved ML.NET model. A multiclass PredictedLabel is answered
/// with the label's value, from the file's <c>label_key_values</c> metadata.
/// </summary>
public sealed class OnnxScorer : IRowScorer, IDisposable
{
    private readonly InferenceSession _session;
    private readonly string[]? _labels;

    /// <summary>Opens <paramref name="path"/>; throws naming an input the service cannot read from JSON.</summary>
    public OnnxScorer(string path)
    {
        _session = new InferenceSession(path);
        try
        {
            var schema = new DataViewSchema.Builder();
            foreach (var (name, meta) in _session.InputMetadata)
            {
                long width = meta.Dimensions.Skip(1).Aggregate(1L, (a, d) => a * d);
                if (meta.Dimensions.Length < 2 || meta.Dimensions.Skip(1).Any(d => d <= 0))
                    throw new NotSupportedException($"ONNX input '{name}' has shape [{string.Join(", ", meta.Dimensions)}]; the service reads [N, d] inputs with a known d.");
                DataViewType type = meta.ElementType == typeof(float) ? (width == 1 ? NumberDataViewType.Single : new VectorDataViewType(NumberDataViewType.Single, (int)width))
                    : meta.ElementType == typeof(string) && width == 1 ? TextDataViewType.Instance
                    : throw new NotSupportedException($"ONNX input '{name}' is {meta.ElementType.Name}[{string.Join(", ", meta.Dimensions)}]; the service reads float [N, d] and string [N, 1] inputs.");
                schema.AddColumn(name, type);
            }
            Required = [.. schema.ToSchema()];
            OutputNames = [.. _session.OutputMetadata.Keys];
            if (_session.ModelMetadata.CustomMetadataMap.TryGetValue("label_key_values", out var values))
                _labels = values.Split('\n');
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<DataViewSchema.Column> Required { get; }

    /// <inheritdoc />
    public IReadOnlyList<string> OutputNames { get; }

    /// <inheritdoc />
    public IEnumerable<object> Fields => Required.Select(c => new { name = c.Name, type = c.Type.ToString() });

    /// <summary>What the file says it is (family and task), for logs and /health.</summary>
    public string Description => _session.ModelMetadata.GraphName;

    /// <inheritdoc />
    public List<Dictionary<string, object?>> Predict(IReadOnlyList<JsonElement> rows)
    {
        var values = rows.Select((r, i) => RowScorer.Parse(r, i, rows.Count, Required)).ToList();
        int n = values.Count;
        var inputs = Required.Select((c, k) => c.Type switch
        {
            TextDataViewType => NamedOnnxValue.CreateFromTensor(c.Name, new DenseTensor<string>(values.Select(v => v[k].ToString()!).ToArray(), [n, 1])),
            VectorDataViewType v => NamedOnnxValue.CreateFromTensor(c.Name, new DenseTensor<float>(values.SelectMany(r => ((VBuffer<float>)r[k]).DenseValues()).ToArray(), [n, v.Size])),
            _ => NamedOnnxValue.CreateFromTensor(c.Name, new DenseTensor<float>(values.Select(r => (float)r[k]).ToArray(), [n, 1])),
        }).ToList();
        using var results = _session.Run(inputs);
        var result = Enumerable.Range(0, n).Select(_ => new Dictionary<string, object?>(results.Count)).ToList();
        foreach (var output in results)
        {
            string key = JsonNamingPolicy.CamelCase.ConvertName(output.Name);
            var columns = output.ElementType switch
            {
                TensorElementType.Float => Split(output.AsTensor<float>(), n, f => float.IsFinite(f) ? f : null),
                TensorElementType.Bool => Split(output.AsTensor<bool>(), n, b => b),
                TensorElementType.UInt32 => Split(output.AsTensor<uint>(), n, k => _labels is not null && k >= 1 && k <= _labels.Length ? _labels[k - 1] : k),
                TensorElementType.Int64 => Split(output.AsTensor<long>(), n, l => l),
                var t => throw new NotSupportedException($"ONNX output '{output.Name}' is {t}."),
            };
            for (int r = 0; r < n; r++) result[r][key] = columns[r];
        }
        return result;
    }

    // Row r's part of a [N, ...] output: a single value, or an array for wider outputs.
    private static object?[] Split<T>(Tensor<T> tensor, int rows, Func<T, object?> convert)
    {
        var all = tensor.ToArray();
        int width = all.Length / rows;
        return Enumerable.Range(0, rows)
            .Select(r => width == 1 ? convert(all[r]) : (object?)all.Skip(r * width).Take(width).Select(convert).ToArray())
            .ToArray();
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();
}
