using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// The attention weights of one encoder layer for one input row: <see cref="Heads"/>[h][i, j] is how much token i attends
/// to token j in head h (each row sums to 1 over the row's real tokens; padding is left out).
/// </summary>
/// <param name="Tokens">The row's tokens in the order the encoder saw them ("[CLS]" first where the model has one).</param>
/// <param name="Heads">One [tokens × tokens] matrix per head.</param>
public sealed record AttentionMap(string[] Tokens, float[][,] Heads)
{
    /// <summary>The weights averaged over heads, [tokens × tokens].</summary>
    public float[,] Mean
    {
        get
        {
            int n = Tokens.Length;
            var mean = new float[n, n];
            foreach (var h in Heads)
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++)
                        mean[i, j] += h[i, j] / Heads.Length;
            return mean;
        }
    }
}

/// <summary>Attention weights of fitted transformer models (text, FT-Transformer or ViT), for heat maps.</summary>
public static class TransformerAttentionExtensions
{
    /// <summary>
    /// The attention weights of encoder layer <paramref name="layer"/> (0-based; −1 = the last) for the first
    /// <paramref name="maxRows"/> rows of <paramref name="data"/>, which must have the model's feature column.
    /// </summary>
    /// <exception cref="NotSupportedException">The model is not a transformer.</exception>
    public static IReadOnlyList<AttentionMap> AttentionWeights(this DeepTransformer model, IDataView data, int layer = -1, int maxRows = 16)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (model.Network.Body is not TorchSharp.Modules.Sequential seq || seq.children().FirstOrDefault() is not TransformerBody body)
            throw new NotSupportedException($"AttentionWeights needs a transformer model (TransformerTrainer, FtTransformerTrainer or VitTrainer); this model is a {model.Family}.");
        if (maxRows < 1) throw new ArgumentOutOfRangeException(nameof(maxRows), maxRows, "maxRows must be at least 1.");

        var column = ColumnChecks.Find(data.Schema, model.FeatureColumnName, "Feature");
        var input = model.Spec.Input;
        input.Check(column.Type, column.Name);
        int size = input.Size;
        var rows = new List<float[]>();
        using (var cursor = data.GetRowCursor([column]))
        {
            var reader = new FeatureReader(cursor, column.Name, input);
            while (rows.Count < maxRows && cursor.MoveNext())
            {
                var row = new float[size];
                reader.ReadFeatures(row, rows.Count);
                rows.Add(row);
            }
        }
        if (rows.Count == 0) return [];

        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var x = torch.tensor(rows.SelectMany(r => r).ToArray(), [rows.Count, size]).to(model.Device);
        var (weights, keep) = body.Attention(model.Network.Standardize(x));
        int index = layer < 0 ? weights.Count + layer : layer;
        if (index < 0 || index >= weights.Count)
            throw new ArgumentOutOfRangeException(nameof(layer), layer, $"The model has {weights.Count} encoder layers (0..{weights.Count - 1}, or −1 for the last).");
        var w = weights[index].cpu();
        long heads = w.shape[1], t = w.shape[2];
        var flat = w.data<float>().ToArray();
        var real = keep.cpu().data<bool>().ToArray();
        var maps = new List<AttentionMap>();
        for (int r = 0; r < rows.Count; r++)
        {
            var positions = Enumerable.Range(0, (int)t).Where(i => real[r * t + i]).ToArray();
            var tokens = TokenNames(model, column, rows[r], positions.Length);
            var perHead = new float[heads][,];
            for (int h = 0; h < heads; h++)
            {
                var m = perHead[h] = new float[positions.Length, positions.Length];
                long offset = (r * heads + h) * t * t;
                for (int i = 0; i < positions.Length; i++)
                    for (int j = 0; j < positions.Length; j++)
                        m[i, j] = flat[offset + positions[i] * t + positions[j]];
            }
            maps.Add(new AttentionMap(tokens, perHead));
        }
        return maps;
    }

    /// <summary>FT-Transformer: the feature names; ViT: the patches; text: the words (from the column's key values), "[CLS]" first when pooled by it.</summary>
    private static string[] TokenNames(DeepTransformer model, DataViewSchema.Column column, float[] row, int count)
    {
        if (model.Spec is FtTransformerSpec ft) return ft.TokenNames();
        if (model.Spec is VitSpec vit) return vit.TokenNames();
        var spec = (TransformerSpec)model.Spec;
        bool cls = spec.Pooling == SequencePooling.Cls;
        var words = new VBuffer<ReadOnlyMemory<char>>();
        bool named = column.HasKeyValues();
        if (named) column.GetKeyValues(ref words);
        var values = named ? words.DenseValues().Select(v => v.ToString()).ToArray() : [];
        var unknown = ((TokenInput)spec.Input).UnknownId;
        var tokens = row.Take(count - (cls ? 1 : 0)).Select(id => (int)id is var k && k == unknown ? "<unk>" : k - 1 < values.Length ? values[k - 1] : $"#{k}");
        return cls ? ["[CLS]", .. tokens] : tokens.ToArray();
    }
}
