using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>How token positions are encoded.</summary>
public enum PositionalEncoding
{
    /// <summary>Fixed sines and cosines of geometrically spaced frequencies (Vaswani et al., 2017); no parameters.</summary>
    Sinusoidal,
    /// <summary>A learned embedding per position.</summary>
    Learned,
}

/// <summary>How the encoded sequence becomes one vector.</summary>
public enum SequencePooling
{
    /// <summary>A learned [CLS] token is prepended; its encoded value is the sequence's vector.</summary>
    Cls,
    /// <summary>The mean over the real (non-padding) tokens.</summary>
    Mean,
}

/// <summary>
/// An encoder-only transformer over token sequences: token embeddings plus positions, N encoder layers with padding
/// masks, pooling (CLS or mean over real tokens), then the output layer. Its input is the core's token-sequence input
/// (<see cref="TokenInput"/>): <see cref="NetworkSpec.InputSize"/> = the maximum sequence length.
/// </summary>
[SerializedName("transformer")]
public sealed class TransformerSpec : NetworkSpec
{
    /// <summary>The token input, when the network reads token ids.</summary>
    internal TokenInput? TokenIds => Input as TokenInput;

    /// <summary>Token (model) dimension d.</summary>
    public int Dimension { get; set; } = 64;
    /// <summary>Encoder layers.</summary>
    public int EncoderLayers { get; set; } = 2;
    /// <summary>Attention heads (must divide <see cref="Dimension"/>).</summary>
    public int Heads { get; set; } = 4;
    /// <summary>Hidden width of each feed-forward block.</summary>
    public int FeedForwardSize { get; set; } = 128;
    /// <summary>Dropout on the embeddings, after each sub-layer and inside the feed-forward block.</summary>
    public double Dropout { get; set; } = 0.1;
    /// <summary>Dropout on the attention weights.</summary>
    public double AttentionDropout { get; set; } = 0.1;
    /// <summary>Pre- or post-layer-norm.</summary>
    public LayerNormPosition LayerNorm { get; set; } = LayerNormPosition.Pre;
    /// <summary>Sinusoidal or learned positions.</summary>
    public PositionalEncoding Positions { get; set; } = PositionalEncoding.Sinusoidal;
    /// <summary>CLS token or mean pooling.</summary>
    public SequencePooling Pooling { get; set; } = SequencePooling.Cls;

    /// <inheritdoc />
    public override string Family => "Transformer";

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (TokenIds is not { } t)
            throw new InvalidOperationException("Transformer: the feature column must be a token sequence (a vector of keys from TokenizeIntoWords → MapValueToKey).");
        if (t.MaxLength != InputSize)
            throw new InvalidOperationException($"Transformer: the input size {InputSize} is not the maximum sequence length {t.MaxLength}.");
        if (Dimension < 1 || EncoderLayers < 1 || Heads < 1 || FeedForwardSize < 1)
            throw new InvalidOperationException($"Transformer: dimension, layers, heads and feed-forward size must be at least 1 (got {Dimension}, {EncoderLayers}, {Heads}, {FeedForwardSize}).");
        if (Dimension % Heads != 0)
            throw new InvalidOperationException($"Transformer: {Heads} heads do not divide the token dimension {Dimension}.");
        if (Positions == PositionalEncoding.Sinusoidal && Dimension % 2 != 0)
            throw new InvalidOperationException($"Transformer: sinusoidal positions need an even dimension (got {Dimension}).");
        if (Dropout is < 0 or >= 1 || AttentionDropout is < 0 or >= 1)
            throw new InvalidOperationException("Transformer: dropout and attention dropout must be in [0, 1).");
    }

    private int Tokens => InputSize + (Pooling == SequencePooling.Cls ? 1 : 0);

    /// <inheritdoc />
    public override nn.Module<Tensor, Tensor> Build() => nn.Sequential(
        ("encoder", new TextBody(this)),
        ("output", nn.Linear(Dimension, OutputSize)));

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        int d = Dimension, rows = TokenIds?.EmbeddingRows ?? 0;
        yield return new LayerInfo("input (token ids)", [InputSize], 0);
        yield return new LayerInfo($"embedding ({rows} ids: padding, {rows - 2} words, unknown)", [InputSize, d], (long)rows * d);
        yield return Positions == PositionalEncoding.Learned
            ? new LayerInfo("positions (learned)", [Tokens, d], (long)Tokens * d)
            : new LayerInfo("positions (sinusoidal)", [Tokens, d], 0);
        if (Pooling == SequencePooling.Cls) yield return new LayerInfo("[CLS] token", [Tokens, d], d);
        foreach (var layer in EncoderSummary.Layers(d, EncoderLayers, Heads, FeedForwardSize, LayerNorm, Tokens)) yield return layer;
        yield return new LayerInfo(Pooling == SequencePooling.Cls ? "pool ([CLS])" : "pool (mean over real tokens)", [d], 0);
        yield return new LayerInfo("output (Linear)", [OutputSize], (long)d * OutputSize + OutputSize);
    }

    /// <summary>Sinusoidal encodings [positions, d]: sin on even, cos on odd dimensions.</summary>
    internal static Tensor Sinusoids(int positions, int d)
    {
        var table = new float[positions * d];
        for (int p = 0; p < positions; p++)
            for (int i = 0; i < d; i += 2)
            {
                double angle = p / Math.Pow(10000, (double)i / d);
                table[p * d + i] = (float)Math.Sin(angle);
                table[p * d + i + 1] = (float)Math.Cos(angle);
            }
        return torch.tensor(table, [positions, d]);
    }

    /// <summary>Ids → embeddings + positions (+ CLS) → encoder with key padding mask → pooled vector.</summary>
    private sealed class TextBody : TransformerBody, Onnx.IOnnxExportable
    {
        private readonly TorchSharp.Modules.Embedding embedding;
        private readonly TorchSharp.Modules.Embedding? position_embedding;
        private readonly Tensor? sinusoids;
        private readonly TorchSharp.Modules.Parameter? cls;
        private readonly Encoder encoder;
        private readonly double _dropout;

        public TextBody(TransformerSpec s) : base("Transformer")
        {
            int d = s.Dimension;
            embedding = nn.Embedding(s.TokenIds!.EmbeddingRows, d, padding_idx: TokenInput.PaddingId);
            if (s.Positions == PositionalEncoding.Learned) position_embedding = nn.Embedding(s.Tokens, d);
            else sinusoids = Sinusoids(s.Tokens, d);
            if (s.Pooling == SequencePooling.Cls) cls = nn.Parameter(torch.randn(1, 1, d) * 0.02);
            encoder = new Encoder(d, s.EncoderLayers, s.Heads, s.FeedForwardSize, s.Dropout, s.AttentionDropout, s.LayerNorm);
            _dropout = s.Dropout;
            if (sinusoids is not null) register_buffer(nameof(sinusoids), sinusoids, persistent: false);
            RegisterComponents();
        }

        protected override Tensor Run(Tensor x, List<Tensor>? weights, out Tensor keep)
        {
            var batch = TokenBatch.From(x);
            var h = embedding.forward(batch.Ids);                                   // [B, L, d]
            keep = batch.Mask;
            long b = h.shape[0];
            if (cls is not null)
            {
                h = torch.cat([cls.expand(b, 1, h.shape[2]), h], 1);
                keep = torch.cat([torch.ones(b, 1, dtype: ScalarType.Bool, device: x.device), keep], 1);
            }
            long t = h.shape[1];
            h = h + (position_embedding is not null
                ? position_embedding.forward(torch.arange(t, dtype: ScalarType.Int64, device: x.device))
                : sinusoids!.narrow(0, 0, t));
            h = encoder.Forward(nn.functional.dropout(h, _dropout, training), keep, weights);
            if (cls is not null) return h.select(1, 0);
            var m = keep.unsqueeze(-1).to_type(h.dtype);
            return (h * m).sum(1) / m.sum(1);
        }

        // The same on padded ids: padding keys are masked out of attention and pooling, so the padding's length never
        // changes an output (the PyTorch side trims it to the batch's longest row instead).
        public string ExportOnnx(Onnx.OnnxGraph g, string x, string path)
        {
            const long boolType = (long)global::Onnx.TensorProto.Types.DataType.Bool;
            var (ids, keep) = TokenInput.OnnxIds(g, x, path);
            string h = g.Node("Gather", [g.Initializer($"{path}.embedding.weight", embedding.weight!), ids], $"{path}.embedded", ("axis", 0L));
            if (cls is not null)
            {
                string batch = g.Dimension(ids, 0, $"{path}.batch");
                h = g.Node("Concat", [g.ExpandToBatch(g.Initializer($"{path}.cls", cls), batch, [1, cls.shape[2]], $"{path}.cls_b"), h], $"{path}.with_cls", ("axis", 1L));
                string ones = g.Node("Cast", [g.ExpandToBatch(g.Ints("true", 1), batch, [1], $"{path}.ones")], $"{path}.cls_keep", ("to", boolType));
                keep = g.Node("Concat", [ones, keep], $"{path}.keep_cls", ("axis", 1L));
            }
            string t = g.Dimension(h, 1, $"{path}.t");
            string table = position_embedding is not null ? g.Initializer($"{path}.position_embedding.weight", position_embedding.weight!) : g.Initializer($"{path}.sinusoids", sinusoids!);
            h = g.Add(h, g.Node("Slice", [table, g.Ints("start", 0), t, g.Ints("axes", 0)], $"{path}.positions"), $"{path}.input");
            h = encoder.ExportOnnx(g, h, keep, $"{path}.encoder");
            if (cls is not null) return g.Node("Gather", [h, g.Scalar("cls_index", 0)], $"{path}.pooled", ("axis", 1L));
            string m = g.Node("Cast", [g.Node("Unsqueeze", [keep, g.Ints("axes", -1)], $"{path}.mask")], $"{path}.mask_f", ("to", (long)global::Onnx.TensorProto.Types.DataType.Float));
            return g.Div(g.Node("ReduceSum", [g.Mul(h, m), g.Ints("axis", 1)], $"{path}.sum", ("keepdims", 0L)),
                g.Node("ReduceSum", [m, g.Ints("axis", 1)], $"{path}.count", ("keepdims", 0L)), $"{path}.pooled");
        }
    }
}
