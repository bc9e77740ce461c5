using Microsoft.ML.DeepExtensions.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using DataType = Onnx.TensorProto.Types.DataType;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>
/// A BERT encoder (Devlin et al. 2019) as sentence-transformers models such as all-MiniLM-L6-v2 use it: learned word,
/// position and token-type embeddings, post-layer-norm blocks with exact GELU, and mean pooling over the real tokens.
/// Reads token ids as floats [B, L] (0 is padding) and returns the mean-pooled sentence embedding [B, H]. Parameter
/// names follow Hugging Face's <c>BertModel</c> (<c>embeddings.word_embeddings.weight</c>,
/// <c>encoder.layer.0.attention.self.query.weight</c>, ...), so its weights load by name. Exports to ONNX with the token
/// ids as input (the text is tokenized outside the graph).
/// </summary>
internal sealed class BertEncoder : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly Embeddings embeddings;
    private readonly Stack encoder;
    private readonly int _length;

    /// <summary>An encoder of <paramref name="shape"/> reading rows of <paramref name="length"/> ids.</summary>
    public BertEncoder(BertShape shape, double dropout, int length) : base(nameof(BertEncoder))
    {
        _length = length;
        embeddings = new Embeddings(shape, dropout);
        encoder = new Stack(shape, dropout);
        RegisterComponents();
    }

    /// <summary>Token ids (as floats, 0 = padding) → mean-pooled embedding. Columns past the batch's longest row are cut first.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var ids = x.to_type(ScalarType.Int64);
        var real = ids.ne(0L);
        long length = Math.Max(1, real.sum(1).max().item<long>());
        if (length < ids.shape[1])
        {
            ids = ids.narrow(1, 0, length);
            real = real.narrow(1, 0, length);
        }
        var mask = real.to_type(ScalarType.Float32);
        // Additive attention mask [B, 1, 1, L]: padded keys get a large negative score.
        using var big = (-1e4f).ToScalar();
        var additive = real.logical_not().to_type(ScalarType.Float32).mul(big).view(ids.shape[0], 1, 1, length);
        var h = encoder.call(embeddings.call(ids), additive);
        var weights = mask.unsqueeze(-1);
        var pooled = h.mul(weights).sum(1).div(weights.sum(1).clamp_min(1e-9));
        return pooled.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The graph of <see cref="forward"/> on float ids [N, length]: the padding mask, the embeddings (positions and token
    /// type 0 folded into one constant), every layer with an additive mask, and mean pooling over the real tokens.
    /// </summary>
    public string ExportOnnx(OnnxGraph g, string x, string path)
    {
        using var _ = no_grad();
        var (ids, real) = TokenInput.OnnxIds(g, x, path);
        string mask = g.Node("Cast", [real], $"{path}.mask", ("to", (long)DataType.Float));   // [N, L]
        string additive = g.Node("Unsqueeze", [g.Mul(g.Sub(mask, g.Constant("one", 1f)), g.Constant("big", 1e4f)), g.Ints("axes", 1, 2)], $"{path}.additive");
        string h = embeddings.ExportOnnx(g, ids, _length, $"{path}.embeddings");
        h = encoder.ExportOnnx(g, h, additive, $"{path}.encoder");
        string m = g.Node("Unsqueeze", [mask, g.Ints("axes", -1)], $"{path}.mask3");
        return g.Div(g.Node("ReduceSum", [g.Mul(h, m), g.Ints("axis", 1)], $"{path}.sum", ("keepdims", 0L)),
            g.Node("Clip", [g.Node("ReduceSum", [m, g.Ints("axis", 1)], $"{path}.count", ("keepdims", 0L)), g.Constant("tiny", 1e-9f)], $"{path}.count_min"), $"{path}.pooled");
    }

    private sealed class Embeddings : nn.Module<Tensor, Tensor>
    {
        private readonly Embedding word_embeddings, position_embeddings, token_type_embeddings;
        private readonly LayerNorm LayerNorm;
        private readonly Dropout dropout;

        public Embeddings(BertShape s, double p) : base(nameof(Embeddings))
        {
            word_embeddings = nn.Embedding(s.Vocabulary, s.Hidden, padding_idx: 0);
            position_embeddings = nn.Embedding(s.MaxPositions, s.Hidden);
            token_type_embeddings = nn.Embedding(s.TokenTypes, s.Hidden);
            LayerNorm = nn.LayerNorm(s.Hidden, eps: 1e-12);
            dropout = nn.Dropout(p);
            RegisterComponents();
        }

        public override Tensor forward(Tensor ids)
        {
            using var scope = NewDisposeScope();
            var positions = arange(ids.shape[1], dtype: ScalarType.Int64, device: ids.device);
            var types = zeros_like(ids);
            var e = word_embeddings.call(ids) + position_embeddings.call(positions).unsqueeze(0) + token_type_embeddings.call(types);
            return dropout.call(LayerNorm.call(e)).MoveToOuterDisposeScope();
        }

        public string ExportOnnx(OnnxGraph g, string ids, int length, string path)
        {
            string words = g.Node("Gather", [g.Initializer($"{path}.word_embeddings.weight", word_embeddings.weight!), ids], $"{path}.words", ("axis", 0L));
            using var fixedPart = position_embeddings.weight!.narrow(0, 0, length) + token_type_embeddings.weight![0];
            string e = g.Add(words, g.Initializer($"{path}.positions_and_type", fixedPart), $"{path}.sum");
            return g.LayerNorm(e, LayerNorm.weight, LayerNorm.bias, LayerNorm.eps, $"{path}.LayerNorm");
        }
    }

    private sealed class Stack : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly ModuleList<Layer> layer;

        public Stack(BertShape s, double p) : base(nameof(Stack))
        {
            layer = nn.ModuleList(Enumerable.Range(0, s.Layers).Select(_ => new Layer(s, p)).ToArray());
            RegisterComponents();
        }

        public string ExportOnnx(OnnxGraph g, string h, string mask, string path)
        {
            for (int i = 0; i < layer.Count; i++) h = layer[i].ExportOnnx(g, h, mask, $"{path}.layer.{i}");
            return h;
        }

        public override Tensor forward(Tensor h, Tensor mask)
        {
            var x = h;
            foreach (var l in layer)
            {
                var next = l.call(x, mask);
                if (!ReferenceEquals(x, h)) x.Dispose();
                x = next;
            }
            return x;
        }
    }

    private sealed class Layer : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly Attention attention;
        private readonly Intermediate intermediate;
        private readonly Output output;

        public Layer(BertShape s, double p) : base(nameof(Layer))
        {
            attention = new Attention(s, p);
            intermediate = new Intermediate(s);
            output = new Output(s.Intermediate, s.Hidden, p);
            RegisterComponents();
        }

        public override Tensor forward(Tensor h, Tensor mask)
        {
            using var scope = NewDisposeScope();
            var a = attention.call(h, mask);
            return output.call(intermediate.call(a), a).MoveToOuterDisposeScope();
        }

        public string ExportOnnx(OnnxGraph g, string h, string mask, string path)
        {
            string a = attention.ExportOnnx(g, h, mask, $"{path}.attention");
            return output.ExportOnnx(g, intermediate.ExportOnnx(g, a, $"{path}.intermediate"), a, $"{path}.output");
        }
    }

    private sealed class Attention : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly SelfAttention self;
        private readonly Output output;

        public Attention(BertShape s, double p) : base(nameof(Attention))
        {
            self = new SelfAttention(s, p);
            output = new Output(s.Hidden, s.Hidden, p);
            RegisterComponents();
        }

        public override Tensor forward(Tensor h, Tensor mask)
        {
            using var a = self.call(h, mask);
            return output.call(a, h);
        }

        public string ExportOnnx(OnnxGraph g, string h, string mask, string path) =>
            output.ExportOnnx(g, self.ExportOnnx(g, h, mask, $"{path}.self"), h, $"{path}.output");
    }

    private sealed class SelfAttention : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly Linear query, key, value;
        private readonly int _heads;
        private readonly double _dropout;

        public SelfAttention(BertShape s, double p) : base(nameof(SelfAttention))
        {
            query = nn.Linear(s.Hidden, s.Hidden);
            key = nn.Linear(s.Hidden, s.Hidden);
            value = nn.Linear(s.Hidden, s.Hidden);
            _heads = s.Heads;
            _dropout = p;
            RegisterComponents();
        }

        public override Tensor forward(Tensor h, Tensor mask)
        {
            using var scope = NewDisposeScope();
            long b = h.shape[0], l = h.shape[1], d = h.shape[2] / _heads;
            Tensor Heads(Linear lin) => lin.call(h).view(b, l, _heads, d).transpose(1, 2);
            var context = nn.functional.scaled_dot_product_attention(Heads(query), Heads(key), Heads(value), mask, training ? _dropout : 0);
            return context.transpose(1, 2).reshape(b, l, _heads * d).MoveToOuterDisposeScope();
        }

        public string ExportOnnx(OnnxGraph g, string h, string mask, string path)
        {
            long width = query.in_features, d = width / _heads;
            string Heads(Linear lin, string name) => g.Transpose(g.Reshape(g.Linear(h, lin.weight, lin.bias, $"{path}.{name}"), [0, 0, _heads, d]), [0, 2, 1, 3], $"{path}.{name}_heads");
            string scores = g.Add(g.Div(g.MatMul(Heads(query, "query"), g.Transpose(Heads(key, "key"), [0, 1, 3, 2])), g.Constant("sqrt_d", (float)Math.Sqrt(d))), mask, $"{path}.scores");
            string context = g.MatMul(g.Softmax(scores, -1, $"{path}.weights"), Heads(value, "value"));
            return g.Reshape(g.Transpose(context, [0, 2, 1, 3]), [0, 0, width], $"{path}.context");
        }
    }

    private sealed class Intermediate : nn.Module<Tensor, Tensor>
    {
        private readonly Linear dense;
        private readonly GELU gelu = nn.GELU();

        public Intermediate(BertShape s) : base(nameof(Intermediate))
        {
            dense = nn.Linear(s.Hidden, s.Intermediate);
            RegisterComponents();
        }

        public override Tensor forward(Tensor h)
        {
            using var d = dense.call(h);
            return gelu.call(d);
        }

        public string ExportOnnx(OnnxGraph g, string h, string path) => g.Gelu(g.Linear(h, dense.weight, dense.bias, $"{path}.dense"), $"{path}.gelu");
    }

    /// <summary>dense → dropout → LayerNorm(residual + ·), the end of both sub-blocks.</summary>
    private sealed class Output : nn.Module<Tensor, Tensor, Tensor>
    {
        private readonly Linear dense;
        private readonly LayerNorm LayerNorm;
        private readonly Dropout dropout;

        public Output(long input, long hidden, double p) : base(nameof(Output))
        {
            dense = nn.Linear(input, hidden);
            LayerNorm = nn.LayerNorm(hidden, eps: 1e-12);
            dropout = nn.Dropout(p);
            RegisterComponents();
        }

        public override Tensor forward(Tensor h, Tensor residual)
        {
            using var scope = NewDisposeScope();
            return LayerNorm.call(dropout.call(dense.call(h)).add_(residual)).MoveToOuterDisposeScope();
        }

        public string ExportOnnx(OnnxGraph g, string h, string residual, string path) =>
            g.LayerNorm(g.Add(g.Linear(h, dense.weight, dense.bias, $"{path}.dense"), residual), LayerNorm.weight, LayerNorm.bias, LayerNorm.eps, $"{path}.LayerNorm");
    }

    /// <summary>
    /// The name map from a BERT ONNX export (Hugging Face / PyTorch) to this module's state dict, and the initializers it
    /// needs: names the export kept map as they are; the linear layers' weights, which PyTorch's exporter leaves unnamed
    /// and transposed as MatMul inputs, are named by the bias that the MatMul's output is added to.
    /// </summary>
    public static (Dictionary<string, string> Map, Dictionary<string, OnnxInitializer> Initializers) OnnxNameMap(
        BertEncoder module, OnnxModelContents onnx, string prefix)
    {
        var initializers = new Dictionary<string, OnnxInitializer>(onnx.Initializers);
        foreach (var matmul in onnx.Nodes.Where(n => n.OpType == "MatMul" && onnx.Initializers.ContainsKey(n.Inputs[1])))
        {
            var add = onnx.Nodes.FirstOrDefault(n => n.OpType == "Add" && n.Inputs.Contains(matmul.Outputs[0]));
            string? bias = add?.Inputs.FirstOrDefault(i => i != matmul.Outputs[0] && i.EndsWith(".bias", StringComparison.Ordinal));
            if (bias is null) continue;
            var w = onnx.Initializers[matmul.Inputs[1]];
            if (w.Shape.Length != 2) continue;
            string name = bias[..^".bias".Length] + ".weight";
            initializers[name] = Transposed(name, w);
        }
        var map = new Dictionary<string, string>();
        var missing = new List<string>();
        foreach (var (name, _) in module.named_parameters())
            if (initializers.ContainsKey(name)) map[prefix + name] = name;
            else missing.Add(name);
        if (missing.Count > 0)
            throw new InvalidDataException($"The ONNX model is not a BERT encoder of this shape: no weights for {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? ", ..." : "")}.");
        return (map, initializers);
    }

    private static OnnxInitializer Transposed(string name, OnnxInitializer w)
    {
        long rows = w.Shape[0], cols = w.Shape[1];
        var values = new float[w.Values.Length];
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < cols; c++)
                values[c * rows + r] = w.Values[r * cols + c];
        return new OnnxInitializer(name, [cols, rows], values);
    }
}

/// <summary>The sizes of a BERT encoder, read from its weights (the head count is not in them).</summary>
/// <param name="Vocabulary">Word-piece vocabulary size.</param>
/// <param name="Hidden">Embedding width.</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="Heads">Attention heads.</param>
/// <param name="Intermediate">Feed-forward width.</param>
/// <param name="MaxPositions">Longest input (learned positions).</param>
/// <param name="TokenTypes">Token-type (segment) ids.</param>
public sealed record BertShape(int Vocabulary, int Hidden, int Layers, int Heads, int Intermediate, int MaxPositions, int TokenTypes)
{
    /// <summary>Reads the sizes from a BERT export's initializers; <paramref name="heads"/> is given.</summary>
    internal static BertShape From(OnnxModelContents onnx, int heads)
    {
        long[] Shape(string name) => onnx.Initializers.TryGetValue(name, out var i) ? i.Shape
            : throw new InvalidDataException($"The ONNX model is not a BERT encoder: it has no '{name}'.");
        var word = Shape("embeddings.word_embeddings.weight");
        int layers = onnx.Initializers.Keys.Select(k => k.StartsWith("encoder.layer.", StringComparison.Ordinal) && int.TryParse(k.Split('.')[2], out int n) ? n + 1 : 0).Max();
        return new BertShape((int)word[0], (int)word[1], layers, heads, (int)Shape("encoder.layer.0.intermediate.dense.bias")[0],
            (int)Shape("embeddings.position_embeddings.weight")[0], (int)Shape("embeddings.token_type_embeddings.weight")[0]);
    }

    /// <summary>Trainable parameters of an encoder of this shape.</summary>
    public long ParameterCount => (long)(Vocabulary + MaxPositions + TokenTypes) * Hidden + 2 * Hidden
        + Layers * (4L * Hidden * Hidden + 4 * Hidden + 2L * Hidden * Intermediate + Intermediate + Hidden + 4 * Hidden);
}
