using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>Where an encoder layer normalises: before each sub-layer (pre-norm, stable from scratch) or after the residual sum (post-norm, the original Transformer).</summary>
public enum LayerNormPosition
{
    /// <summary>x + f(LayerNorm(x)), with a final LayerNorm after the last layer.</summary>
    Pre,
    /// <summary>LayerNorm(x + f(x)).</summary>
    Post,
}

/// <summary>
/// Multi-head self-attention written out (so the weights can be read for a heat map): softmax(QKᵀ/√d_head) V per head,
/// with padded keys masked out.
/// </summary>
internal sealed class SelfAttention : nn.Module
{
    private readonly TorchSharp.Modules.Linear qkv;
    private readonly TorchSharp.Modules.Linear proj;
    private readonly int _heads;
    private readonly double _dropout;
    private static readonly Scalar MinusInfinity = float.NegativeInfinity.ToScalar();

    public SelfAttention(int dim, int heads, double dropout) : base("SelfAttention")
    {
        qkv = nn.Linear(dim, 3L * dim);
        proj = nn.Linear(dim, dim);
        _heads = heads;
        _dropout = dropout;
        RegisterComponents();
    }

    /// <param name="x">[B, T, d].</param>
    /// <param name="keep">[B, T] bool, true for real tokens; null when every token is real.</param>
    /// <param name="weights">Receives the attention weights [B, heads, T, T] when not null.</param>
    public Tensor Forward(Tensor x, Tensor? keep, List<Tensor>? weights)
    {
        long b = x.shape[0], t = x.shape[1], d = x.shape[2], dh = d / _heads;
        var parts = qkv.forward(x).view(b, t, 3, _heads, dh).permute(2, 0, 3, 1, 4);   // [3, B, H, T, dh]
        var (q, k, v) = (parts[0], parts[1], parts[2]);
        // Scalars held for the whole call: TorchSharp 0.107's implicit conversions leave a temporary Scalar that the
        // finalizer can free while libtorch still reads it (seen in CI: "Expected false to be true ... toFloat" in masked_fill).
        using var root = Math.Sqrt(dh).ToScalar();
        var scores = q.matmul(k.transpose(-2, -1)).div(root);                                 // [B, H, T, T]
        if (keep is not null) scores = scores.masked_fill(keep.logical_not().view(b, 1, 1, t), MinusInfinity);
        var w = scores.softmax(-1);
        weights?.Add(w);
        var attended = nn.functional.dropout(w, _dropout, training).matmul(v);            // [B, H, T, dh]
        return proj.forward(attended.transpose(1, 2).reshape(b, t, d));
    }

    /// <summary>The same computation as ONNX nodes on <paramref name="x"/> [B, T, d]; <paramref name="keep"/> names a bool [B, T] mask or is null.</summary>
    public string ExportOnnx(Onnx.OnnxGraph g, string x, string? keep, string path)
    {
        long d = qkv.in_features, dh = d / _heads;
        var parts = g.Transpose(g.Reshape(g.Linear(x, qkv.weight, qkv.bias, $"{path}.qkv"), [0, 0, 3, _heads, dh]), [2, 0, 3, 1, 4], $"{path}.heads");
        string Part(long i) => g.Node("Gather", [parts, g.Scalar("index", i)], $"{path}.qkv{i}", ("axis", 0L));   // [B, H, T, dh]
        string q = Part(0), k = Part(1), v = Part(2);
        var scores = g.Div(g.MatMul(q, g.Transpose(k, [0, 1, 3, 2])), g.Constant("sqrt_dh", (float)Math.Sqrt(dh)), $"{path}.scores");
        if (keep is not null)
            scores = g.Node("Where", [g.Node("Unsqueeze", [keep, g.Ints("axes", 1, 2)], $"{path}.keep"), scores, g.Constant("minus_inf", float.NegativeInfinity)], $"{path}.masked");
        var attended = g.MatMul(g.Softmax(scores, -1, $"{path}.weights"), v);
        return g.Linear(g.Reshape(g.Transpose(attended, [0, 2, 1, 3]), [0, 0, d]), proj.weight, proj.bias, $"{path}.proj");
    }
}

/// <summary>One encoder layer: self-attention and a GELU feed-forward block, each with dropout, residual and LayerNorm.</summary>
internal sealed class EncoderLayer : nn.Module
{
    private readonly SelfAttention attention;
    private readonly TorchSharp.Modules.LayerNorm norm1;
    private readonly TorchSharp.Modules.LayerNorm norm2;
    private readonly TorchSharp.Modules.Linear ff1;
    private readonly TorchSharp.Modules.Linear ff2;
    private readonly LayerNormPosition _norm;
    private readonly double _dropout;

    public EncoderLayer(int dim, int heads, int feedForward, double dropout, double attentionDropout, LayerNormPosition norm) : base("EncoderLayer")
    {
        attention = new SelfAttention(dim, heads, attentionDropout);
        norm1 = nn.LayerNorm(dim);
        norm2 = nn.LayerNorm(dim);
        ff1 = nn.Linear(dim, feedForward);
        ff2 = nn.Linear(feedForward, dim);
        _norm = norm;
        _dropout = dropout;
        RegisterComponents();
    }

    private Tensor Drop(Tensor x) => nn.functional.dropout(x, _dropout, training);

    private Tensor FeedForward(Tensor x) => ff2.forward(Drop(nn.functional.gelu(ff1.forward(x))));

    public Tensor Forward(Tensor x, Tensor? keep, List<Tensor>? weights)
    {
        if (_norm == LayerNormPosition.Pre)
        {
            var h = x + Drop(attention.Forward(norm1.forward(x), keep, weights));
            return h + Drop(FeedForward(norm2.forward(h)));
        }
        var a = norm1.forward(x + Drop(attention.Forward(x, keep, weights)));
        return norm2.forward(a + Drop(FeedForward(a)));
    }

    /// <summary>The layer as ONNX nodes (evaluation mode: no dropout).</summary>
    public string ExportOnnx(Onnx.OnnxGraph g, string x, string? keep, string path)
    {
        string Norm(TorchSharp.Modules.LayerNorm n, string v, string name) => g.LayerNorm(v, n.weight, n.bias, n.eps, $"{path}.{name}");
        string Attend(string v) => attention.ExportOnnx(g, v, keep, $"{path}.attention");
        string FeedForward(string v) => g.Linear(g.Gelu(g.Linear(v, ff1.weight, ff1.bias, $"{path}.ff1"), $"{path}.gelu"), ff2.weight, ff2.bias, $"{path}.ff2");
        if (_norm == LayerNormPosition.Pre)
        {
            var h = g.Add(x, Attend(Norm(norm1, x, "norm1")));
            return g.Add(h, FeedForward(Norm(norm2, h, "norm2")));
        }
        var a = Norm(norm1, g.Add(x, Attend(x)), "norm1");
        return Norm(norm2, g.Add(a, FeedForward(a)), "norm2");
    }
}

/// <summary>A stack of encoder layers (plus the final LayerNorm of a pre-norm stack), shared by the text and tabular transformers.</summary>
internal sealed class Encoder : nn.Module
{
    private readonly TorchSharp.Modules.ModuleList<EncoderLayer> layers;
    private readonly TorchSharp.Modules.LayerNorm? final_norm;

    public Encoder(int dim, int layerCount, int heads, int feedForward, double dropout, double attentionDropout, LayerNormPosition norm) : base("Encoder")
    {
        layers = nn.ModuleList(Enumerable.Range(0, layerCount).Select(_ => new EncoderLayer(dim, heads, feedForward, dropout, attentionDropout, norm)).ToArray());
        if (norm == LayerNormPosition.Pre) final_norm = nn.LayerNorm(dim);
        RegisterComponents();
    }

    public int Count => layers.Count;

    /// <summary>[B, T, d] → [B, T, d]; <paramref name="weights"/> (when not null) receives each layer's attention weights.</summary>
    public Tensor Forward(Tensor x, Tensor? keep, List<Tensor>? weights)
    {
        foreach (var layer in layers) x = layer.Forward(x, keep, weights);
        return final_norm is null ? x : final_norm.forward(x);
    }

    /// <summary>The stack as ONNX nodes on <paramref name="x"/> [B, T, d].</summary>
    public string ExportOnnx(Onnx.OnnxGraph g, string x, string? keep, string path)
    {
        for (int i = 0; i < layers.Count; i++) x = layers[i].ExportOnnx(g, x, keep, $"{path}.layers.{i}");
        return final_norm is null ? x : g.LayerNorm(x, final_norm.weight, final_norm.bias, final_norm.eps, $"{path}.final_norm");
    }
}

/// <summary>
/// The part of a transformer before its output layer: it turns the input row into tokens, encodes them and pools them
/// into one vector. <see cref="Attention"/> gives the attention weights of every layer for a heat map.
/// </summary>
internal abstract class TransformerBody : nn.Module<Tensor, Tensor>
{
    protected TransformerBody(string name) : base(name) { }

    /// <summary>Pooled representation [B, d].</summary>
    public override Tensor forward(Tensor x) => Run(x, null);

    /// <summary>Every layer's attention weights [B, heads, T, T] and the mask of real tokens [B, T].</summary>
    public (List<Tensor> Weights, Tensor Keep) Attention(Tensor x)
    {
        var weights = new List<Tensor>();
        Run(x, weights, out var keep);
        return (weights, keep);
    }

    private Tensor Run(Tensor x, List<Tensor>? weights) => Run(x, weights, out _);

    /// <summary>Tokenises, encodes and pools; <paramref name="keep"/> is the real-token mask [B, T] (CLS included).</summary>
    protected abstract Tensor Run(Tensor x, List<Tensor>? weights, out Tensor keep);
}

/// <summary>Summary rows of an encoder stack.</summary>
internal static class EncoderSummary
{
    public static IEnumerable<LayerInfo> Layers(int d, int layers, int heads, int feedForward, LayerNormPosition norm, long tokens)
    {
        long attention = 4L * d * d + 4L * d, ff = 2L * d * feedForward + feedForward + d, norms = 4L * d;
        // Kept for the backward pass: scores and softmax per head (tokens²), queries/keys/values and the attended values, the
        // feed-forward hidden layer, the two norms' inputs.
        long internalValues = 2L * heads * tokens * tokens + tokens * (6L * d + feedForward);
        for (int i = 0; i < layers; i++)
            yield return new LayerInfo($"encoder{i + 1} ({heads} heads, ff {feedForward}, {norm}-norm)", [tokens, d], attention + ff + norms) { InternalActivations = internalValues };
        if (norm == LayerNormPosition.Pre) yield return new LayerInfo("final LayerNorm", [tokens, d], 2L * d);
    }
}
