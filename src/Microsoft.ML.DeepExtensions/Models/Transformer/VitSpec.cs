using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>
/// A vision transformer (ViT, Dosovitskiy et al., 2021): the image is cut into non-overlapping P×P patches, each patch's
/// pixels are projected linearly to a d-dimensional token, learned positions are added (and a [CLS] token prepended when
/// pooled by it), N encoder layers attend across patches, and the pooled vector feeds the output layer.
/// </summary>
[SerializedName("vit")]
public sealed class VitSpec : NetworkSpec
{
    /// <summary>Image channels.</summary>
    public int Channels { get; set; } = 1;
    /// <summary>Image height (a multiple of <see cref="PatchSize"/>).</summary>
    public int Height { get; set; }
    /// <summary>Image width (a multiple of <see cref="PatchSize"/>).</summary>
    public int Width { get; set; }
    /// <summary>True when the vector holds pixels channel-interleaved (height × width × channels).</summary>
    public bool Interleaved { get; set; }
    /// <summary>Side of the square patches.</summary>
    public int PatchSize { get; set; } = 4;
    /// <summary>Token (model) dimension d.</summary>
    public int Dimension { get; set; } = 64;
    /// <summary>Encoder layers.</summary>
    public int EncoderLayers { get; set; } = 6;
    /// <summary>Attention heads (must divide <see cref="Dimension"/>).</summary>
    public int Heads { get; set; } = 4;
    /// <summary>Hidden width of each feed-forward block.</summary>
    public int FeedForwardSize { get; set; } = 128;
    /// <summary>Dropout on the tokens, after each sub-layer and inside the feed-forward block.</summary>
    public double Dropout { get; set; } = 0.1;
    /// <summary>Dropout on the attention weights.</summary>
    public double AttentionDropout { get; set; }
    /// <summary>Pre- or post-layer-norm.</summary>
    public LayerNormPosition LayerNorm { get; set; } = LayerNormPosition.Pre;
    /// <summary>[CLS] token or mean over the patches.</summary>
    public SequencePooling Pooling { get; set; } = SequencePooling.Mean;
    /// <summary>Training-time augmentation (random shifts, horizontal flips); null for none.</summary>
    public Augmentation? Augmentation { get; set; }
    /// <summary>
    /// Patches are cut from a small convolutional stem's feature map instead of the pixels (see
    /// <see cref="VitTrainer.Options.ConvolutionalStem"/>).
    /// </summary>
    public bool ConvolutionalStem { get; set; }

    /// <summary>
    /// The stem's 3×3 convolutions as (output channels, stride): one stride-2 convolution per factor 2 of the patch side,
    /// widening to d, or a single stride-1 convolution of d/2 channels when the side is odd. Empty without a stem.
    /// </summary>
    public (int Channels, int Stride)[] Stem()
    {
        if (!ConvolutionalStem) return [];
        int halvings = System.Numerics.BitOperations.TrailingZeroCount(PatchSize);
        if (halvings == 0) return [(Math.Max(8, Dimension / 2), 1)];
        return Enumerable.Range(0, halvings).Select(i => (Math.Max(8, Dimension >> (halvings - 1 - i)), 2)).ToArray();
    }

    /// <summary>Channels and side of the patches the patch embedding sees (the stem's output, or the pixels).</summary>
    private (int Channels, int Side) PatchInput
    {
        get
        {
            var stem = Stem();
            int stride = stem.Aggregate(1, (s, c) => s * c.Stride);
            return stem.Length == 0 ? (Channels, PatchSize) : (stem[^1].Channels, PatchSize / stride);
        }
    }

    /// <inheritdoc />
    public override string Family => "ViT";

    /// <inheritdoc />
    protected override FeatureInput DefaultInput => new ImageInput(new ImageShape(Channels, Height, Width));

    /// <summary>Patches per row and per column.</summary>
    public (int Rows, int Columns) Grid => (Height / PatchSize, Width / PatchSize);

    private int Patches => Grid.Rows * Grid.Columns;

    private int Tokens => Patches + (Pooling == SequencePooling.Cls ? 1 : 0);

    /// <summary>Token names in the order the encoder sees them: "[CLS]" (when pooled by it), then "patch r,c" row by row (1-based).</summary>
    public string[] TokenNames()
    {
        var (rows, columns) = Grid;
        var patches = Enumerable.Range(0, rows * columns).Select(i => $"patch {i / columns + 1},{i % columns + 1}");
        return Pooling == SequencePooling.Cls ? ["[CLS]", .. patches] : patches.ToArray();
    }

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (Channels < 1 || Height < 1 || Width < 1)
            throw new InvalidOperationException($"ViT: the image shape must be positive (got {Channels}×{Height}×{Width}).");
        if ((long)Channels * Height * Width != InputSize)
            throw new InvalidOperationException(
                $"ViT: the feature vector has {InputSize} values, which is not {Channels}×{Height}×{Width} = {(long)Channels * Height * Width}. Give ImageShape to match the vector (e.g. 784 = 1×28×28).");
        if (PatchSize < 1 || Height % PatchSize != 0 || Width % PatchSize != 0)
            throw new InvalidOperationException(
                $"ViT: PatchSize {PatchSize} must divide the image's height and width ({Height}×{Width}); choose a divisor (e.g. {string.Join(" or ", Divisors(Height, Width))}) or resize the images.");
        if (Dimension < 1 || EncoderLayers < 1 || Heads < 1 || FeedForwardSize < 1)
            throw new InvalidOperationException($"ViT: dimension, layers, heads and feed-forward size must be at least 1 (got {Dimension}, {EncoderLayers}, {Heads}, {FeedForwardSize}).");
        if (Dimension % Heads != 0)
            throw new InvalidOperationException($"ViT: {Heads} heads do not divide the token dimension {Dimension}.");
        if (Dropout is < 0 or >= 1 || AttentionDropout is < 0 or >= 1)
            throw new InvalidOperationException("ViT: dropout and attention dropout must be in [0, 1).");
    }

    private static IEnumerable<int> Divisors(int h, int w) => Enumerable.Range(2, Math.Max(0, Math.Min(h, w) - 1)).Where(p => h % p == 0 && w % p == 0).Take(4).DefaultIfEmpty(1);

    /// <inheritdoc />
    public override nn.Module<Tensor, Tensor> Build() => nn.Sequential(
        ("encoder", new VitBody(this)),
        ("output", nn.Linear(Dimension, OutputSize)));

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        int d = Dimension, p = PatchSize, n = Patches, t = Tokens;
        yield return new LayerInfo("input (image)", [Channels, Height, Width], 0);
        int c = Channels, h = Height, w = Width;
        foreach (var (channels, stride) in Stem())
        {
            (h, w) = (h / stride, w / stride);
            yield return new LayerInfo($"stem conv 3×3 stride {stride} + batch norm + ReLU", [channels, h, w], (long)c * 9 * channels + 2L * channels);
            c = channels;
        }
        var (pc, ps) = PatchInput;
        yield return new LayerInfo($"patches ({Grid.Rows}×{Grid.Columns} of {p}×{p})", [n, (long)pc * ps * ps], 0);
        yield return new LayerInfo("patch embedding (Linear)", [n, d], ((long)pc * ps * ps + 1) * d);
        if (Pooling == SequencePooling.Cls) yield return new LayerInfo("[CLS] token", [t, d], d);
        yield return new LayerInfo("positions (learned)", [t, d], (long)t * d);
        foreach (var layer in EncoderSummary.Layers(d, EncoderLayers, Heads, FeedForwardSize, LayerNorm, t)) yield return layer;
        yield return new LayerInfo(Pooling == SequencePooling.Cls ? "pool ([CLS])" : "pool (mean over patches)", [d], 0);
        yield return new LayerInfo("output (Linear)", [OutputSize], (long)d * OutputSize + OutputSize);
    }

    /// <summary>Pixels → image → (augmented in training) → patch tokens + positions (+ CLS) → encoder → pooled vector.</summary>
    private sealed class VitBody : TransformerBody, Onnx.IOnnxExportable
    {
        private readonly CnnSpec.ToImage image;
        private readonly CnnSpec.Augment? augment;
        private readonly nn.Module<Tensor, Tensor>? stem;
        private readonly TorchSharp.Modules.Linear patch_embedding;
        private readonly TorchSharp.Modules.Parameter positions;
        private readonly TorchSharp.Modules.Parameter? cls;
        private readonly Encoder encoder;
        private readonly int _c, _p, _rows, _columns;
        private readonly double _dropout;

        public VitBody(VitSpec s) : base("VisionTransformer")
        {
            int d = s.Dimension;
            ((_c, _p), (_rows, _columns)) = (s.PatchInput, s.Grid);
            image = new CnnSpec.ToImage(s.Channels, s.Height, s.Width, s.Interleaved);
            if (s.Augmentation is { } a && (a.MaxShift > 0 || a.HorizontalFlip)) augment = new CnnSpec.Augment(a.MaxShift, a.HorizontalFlip, s.Height, s.Width);
            var convolutions = s.Stem();
            if (convolutions.Length > 0)
            {
                var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
                int c = s.Channels, n = 0;
                foreach (var (channels, stride) in convolutions)
                {
                    n++;
                    layers.Add(($"conv{n}", nn.Conv2d(c, channels, 3, stride: stride, padding: 1, bias: false)));
                    layers.Add(($"batchnorm{n}", nn.BatchNorm2d(channels)));
                    layers.Add(($"relu{n}", nn.ReLU()));
                    c = channels;
                }
                stem = nn.Sequential(layers);
            }
            patch_embedding = nn.Linear((long)_c * _p * _p, d);
            positions = nn.Parameter(torch.randn(1, s.Tokens, d) * 0.02);
            if (s.Pooling == SequencePooling.Cls) cls = nn.Parameter(torch.randn(1, 1, d) * 0.02);
            encoder = new Encoder(d, s.EncoderLayers, s.Heads, s.FeedForwardSize, s.Dropout, s.AttentionDropout, s.LayerNorm);
            _dropout = s.Dropout;
            RegisterComponents();
        }

        protected override Tensor Run(Tensor x, List<Tensor>? weights, out Tensor keep)
        {
            var img = image.forward(x);                                                       // [B, C, H, W]
            if (augment is not null) img = augment.forward(img);
            if (stem is not null) img = stem.forward(img);                                    // [B, C', H / s, W / s]
            long b = img.shape[0];
            // [B, C, rows, P, columns, P] → [B, rows, columns, C, P, P] → one row of C·P·P pixels per patch.
            var patches = img.view(b, _c, _rows, _p, _columns, _p).permute(0, 2, 4, 1, 3, 5).reshape(b, (long)_rows * _columns, (long)_c * _p * _p);
            var h = patch_embedding.forward(patches);                                         // [B, N, d]
            if (cls is not null) h = torch.cat([cls.expand(b, 1, h.shape[2]), h], 1);
            h = encoder.Forward(nn.functional.dropout(h + positions, _dropout, training), null, weights);
            keep = torch.ones(b, h.shape[1], dtype: ScalarType.Bool, device: x.device);
            return cls is not null ? h.select(1, 0) : h.mean([1]);
        }

        public string ExportOnnx(Onnx.OnnxGraph g, string x, string path)
        {
            string img = image.ExportOnnx(g, x, $"{path}.image");
            if (stem is not null) img = Onnx.OnnxModules.Export(g, stem, img, $"{path}.stem");
            string grid = g.Reshape(img, [0, _c, _rows, _p, _columns, _p], $"{path}.grid");
            string patches = g.Reshape(g.Transpose(grid, [0, 2, 4, 1, 3, 5], $"{path}.patch_order"), [0, (long)_rows * _columns, (long)_c * _p * _p], $"{path}.patches");
            string h = g.Linear(patches, patch_embedding.weight!, patch_embedding.bias, $"{path}.patch_embedding");
            if (cls is not null)
                h = g.Node("Concat", [g.ExpandToBatch(g.Initializer($"{path}.cls", cls), g.Dimension(x, 0, $"{path}.batch"), [1, cls.shape[2]], $"{path}.cls_b"), h], $"{path}.with_cls", ("axis", 1L));
            h = encoder.ExportOnnx(g, g.Add(h, g.Initializer($"{path}.positions", positions), $"{path}.input"), null, $"{path}.encoder");
            return cls is not null
                ? g.Node("Gather", [h, g.Scalar("cls_index", 0)], $"{path}.pooled", ("axis", 1L))
                : g.Div(g.Node("ReduceSum", [h, g.Ints("axis", 1)], $"{path}.sum", ("keepdims", 0L)), g.Constant("patch_count", (float)(_rows * _columns)), $"{path}.pooled");
        }
    }
}
