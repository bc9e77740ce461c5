using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>
/// FT-Transformer (Gorishniy et al., 2021) for tabular data: every feature becomes a d-dimensional token, a learned CLS
/// token is prepended, N encoder layers attend across features, and the CLS output (after the final LayerNorm and a ReLU) feeds the
/// output layer.
/// </summary>
[SerializedName("ft-transformer")]
public sealed class FtTransformerSpec : NetworkSpec
{
    /// <summary>The feature tokens, in order: together they cover every slot of the feature vector, each slot once.</summary>
    public FeatureToken[] Tokens { get; set; } = [];
    /// <summary>Token width d.</summary>
    public int Dimension { get; set; } = 64;
    /// <summary>Encoder layers.</summary>
    public int EncoderLayers { get; set; } = 3;
    /// <summary>Attention heads (must divide <see cref="Dimension"/>).</summary>
    public int Heads { get; set; } = 8;
    /// <summary>Hidden width of each feed-forward block.</summary>
    public int FeedForwardSize { get; set; } = 128;
    /// <summary>Dropout after attention and feed-forward blocks (residual dropout) and inside the feed-forward block.</summary>
    public double Dropout { get; set; } = 0.1;
    /// <summary>Dropout on the attention weights.</summary>
    public double AttentionDropout { get; set; } = 0.2;
    /// <summary>Pre- or post-layer-norm.</summary>
    public LayerNormPosition LayerNorm { get; set; } = LayerNormPosition.Pre;

    /// <inheritdoc />
    public override string Family => "FT-Transformer";

    /// <summary>Token names in the order the encoder sees them: "[CLS]" then the numeric tokens then the grouped ones.</summary>
    public string[] TokenNames() => ["[CLS]", .. Numeric().Select(t => t.Name), .. Grouped().Select(t => t.Name)];

    internal IEnumerable<FeatureToken> Numeric() => Tokens.Where(t => t.Length == 1);
    internal IEnumerable<FeatureToken> Grouped() => Tokens.Where(t => t.Length > 1);

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (Dimension < 1 || EncoderLayers < 1 || Heads < 1 || FeedForwardSize < 1)
            throw new InvalidOperationException($"FT-Transformer: dimension, layers, heads and feed-forward size must be at least 1 (got {Dimension}, {EncoderLayers}, {Heads}, {FeedForwardSize}).");
        if (Dimension % Heads != 0)
            throw new InvalidOperationException($"FT-Transformer: {Heads} heads do not divide the token dimension {Dimension}.");
        if (Dropout is < 0 or >= 1 || AttentionDropout is < 0 or >= 1)
            throw new InvalidOperationException("FT-Transformer: dropout and attention dropout must be in [0, 1).");
        if (Tokens.Length == 0) throw new InvalidOperationException("FT-Transformer: no feature tokens.");
        var covered = new bool[InputSize];
        foreach (var t in Tokens)
        {
            if (t.Length < 1 || t.Start < 0 || t.Start + t.Length > InputSize)
                throw new InvalidOperationException($"FT-Transformer: token '{t.Name}' (slots {t.Start}..{t.Start + t.Length - 1}) lies outside the {InputSize}-value feature vector.");
            for (int i = t.Start; i < t.Start + t.Length; i++)
            {
                if (covered[i]) throw new InvalidOperationException($"FT-Transformer: slot {i} belongs to two tokens (token '{t.Name}').");
                covered[i] = true;
            }
        }
        int uncovered = Array.IndexOf(covered, false);
        if (uncovered >= 0)
            throw new InvalidOperationException($"FT-Transformer: slot {uncovered} of the {InputSize}-value feature vector belongs to no token; the tokens must cover every slot.");
    }

    /// <inheritdoc />
    public override nn.Module<Tensor, Tensor> Build() => nn.Sequential(
        ("encoder", new FtBody(this)),
        ("output", nn.Linear(Dimension, OutputSize)));

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        int d = Dimension, n = Tokens.Length + 1;
        yield return new LayerInfo("input", [InputSize], 0);
        int numeric = Numeric().Count();
        if (numeric > 0) yield return new LayerInfo($"numeric tokens ({numeric}: x·w + b)", [numeric, d], 2L * numeric * d);
        foreach (var g in Grouped())
            yield return new LayerInfo($"token '{g.Name}' (Linear {g.Length}→{d})", [d], (long)g.Length * d + d);
        yield return new LayerInfo("[CLS] token", [n, d], d);
        foreach (var layer in EncoderSummary.Layers(d, EncoderLayers, Heads, FeedForwardSize, LayerNorm, n)) yield return layer;
        yield return new LayerInfo("[CLS] → ReLU", [d], 0);
        yield return new LayerInfo("output (Linear)", [OutputSize], (long)d * OutputSize + OutputSize);
    }

    /// <summary>Feature tokens → CLS + encoder → ReLU of the CLS output.</summary>
    private sealed class FtBody : TransformerBody, Onnx.IOnnxExportable
    {
        private readonly Tensor numeric_index;
        private readonly TorchSharp.Modules.Parameter numeric_weight;
        private readonly TorchSharp.Modules.Parameter numeric_bias;
        private readonly TorchSharp.Modules.ModuleList<TorchSharp.Modules.Linear> groups;
        private readonly TorchSharp.Modules.Parameter cls;
        private readonly Encoder encoder;
        private readonly (int Start, int Length)[] _groups;
        private readonly int _numeric;

        public FtBody(FtTransformerSpec s) : base("FtTransformer")
        {
            int d = s.Dimension;
            var numeric = s.Numeric().Select(t => (long)t.Start).ToArray();
            _numeric = numeric.Length;
            _groups = s.Grouped().Select(t => (t.Start, t.Length)).ToArray();
            double bound = 1 / Math.Sqrt(d);
            numeric_index = torch.tensor(numeric, ScalarType.Int64);
            numeric_weight = nn.Parameter(torch.empty(Math.Max(1, _numeric), d).uniform_(-bound, bound));
            numeric_bias = nn.Parameter(torch.empty(Math.Max(1, _numeric), d).uniform_(-bound, bound));
            groups = nn.ModuleList(_groups.Select(g => nn.Linear(g.Length, d)).ToArray());
            cls = nn.Parameter(torch.empty(1, 1, d).uniform_(-bound, bound));
            encoder = new Encoder(d, s.EncoderLayers, s.Heads, s.FeedForwardSize, s.Dropout, s.AttentionDropout, s.LayerNorm);
            register_buffer(nameof(numeric_index), numeric_index, persistent: false);
            RegisterComponents();
        }

        protected override Tensor Run(Tensor x, List<Tensor>? weights, out Tensor keep)
        {
            long b = x.shape[0];
            var tokens = new List<Tensor> { cls.expand(b, 1, cls.shape[2]) };
            if (_numeric > 0)
                tokens.Add(x.index_select(1, numeric_index).unsqueeze(-1) * numeric_weight + numeric_bias);   // [B, n, d]
            for (int i = 0; i < _groups.Length; i++)
                tokens.Add(groups[i].forward(x.narrow(1, _groups[i].Start, _groups[i].Length)).unsqueeze(1));
            var h = encoder.Forward(torch.cat(tokens, 1), null, weights);
            keep = torch.ones(b, h.shape[1], dtype: ScalarType.Bool, device: x.device);
            return nn.functional.relu(h.select(1, 0));   // the encoder ends in LayerNorm (pre- or post-norm)
        }

        public string ExportOnnx(Onnx.OnnxGraph g, string x, string path)
        {
            // [CLS] expanded to the batch: [1, 1, d] → [B, 1, d].
            var tokens = new List<string> { g.ExpandToBatch(g.Initializer($"{path}.cls", cls), g.Dimension(x, 0, $"{path}.batch"), [1, cls.shape[2]], $"{path}.cls_b") };
            if (_numeric > 0)
            {
                string values = g.Node("Unsqueeze", [g.Node("Gather", [x, g.Initializer($"{path}.numeric_index", numeric_index)], $"{path}.numeric", ("axis", 1L)), g.Ints("axes", -1)], $"{path}.numeric_1");
                tokens.Add(g.Add(g.Mul(values, g.Initializer($"{path}.numeric_weight", numeric_weight)), g.Initializer($"{path}.numeric_bias", numeric_bias), $"{path}.numeric_tokens"));
            }
            for (int i = 0; i < _groups.Length; i++)
            {
                var (start, length) = _groups[i];
                string slots = g.Node("Slice", [x, g.Ints("start", start), g.Ints("end", start + length), g.Ints("axes", 1)], $"{path}.group{i}");
                tokens.Add(g.Node("Unsqueeze", [g.Linear(slots, groups[i].weight, groups[i].bias, $"{path}.groups.{i}"), g.Ints("axes", 1)], $"{path}.group_token{i}"));
            }
            string h = encoder.ExportOnnx(g, g.Node("Concat", [.. tokens], $"{path}.tokens", ("axis", 1L)), null, $"{path}.encoder");
            return g.Node("Relu", [g.Node("Gather", [h, g.Scalar("cls_index", 0)], $"{path}.cls_out", ("axis", 1L))], $"{path}.pooled");
        }
    }
}
