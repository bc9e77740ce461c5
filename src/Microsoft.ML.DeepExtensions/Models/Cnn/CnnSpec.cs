using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>Pooling after a convolution block.</summary>
public enum Pooling
{
    /// <summary>No pooling.</summary>
    None,
    /// <summary>Max pooling.</summary>
    Max,
    /// <summary>Average pooling.</summary>
    Average,
}

/// <summary>One convolution block: convolution, optional batch norm, activation, optional pooling and dropout.</summary>
public sealed class ConvBlock
{
    /// <summary>Number of filters (output channels).</summary>
    public int Filters { get; set; } = 32;
    /// <summary>Square kernel size.</summary>
    public int Kernel { get; set; } = 3;
    /// <summary>Convolution stride.</summary>
    public int Stride { get; set; } = 1;
    /// <summary>"same" (keep the size at stride 1; odd kernels), "valid" (no padding) or a number of pixels.</summary>
    public string Padding { get; set; } = "same";
    /// <summary>Activation after the convolution (and batch norm).</summary>
    public Activation Activation { get; set; } = Activation.Relu;
    /// <summary>Batch normalisation after the convolution.</summary>
    public bool BatchNorm { get; set; }
    /// <summary>Pooling after the activation.</summary>
    public Pooling Pooling { get; set; } = Pooling.Max;
    /// <summary>Pooling window.</summary>
    public int PoolSize { get; set; } = 2;
    /// <summary>Pooling stride (default: the window size).</summary>
    public int? PoolStride { get; set; }
    /// <summary>Dropout probability after the block.</summary>
    public double Dropout { get; set; }

    internal int PaddingPixels(string where) => Padding.Trim().ToLowerInvariant() switch
    {
        "valid" => 0,
        "same" when Kernel % 2 == 1 => Kernel / 2,
        "same" => throw new InvalidOperationException($"CNN {where}: padding 'same' needs an odd kernel (got {Kernel}); give the padding in pixels."),
        var p when int.TryParse(p, out int n) && n >= 0 => n,
        _ => throw new InvalidOperationException($"CNN {where}: padding '{Padding}' is not 'same', 'valid' or a number of pixels."),
    };
}

/// <summary>Training-time augmentation (off at scoring): random shifts and horizontal flips, per image.</summary>
public sealed class Augmentation
{
    /// <summary>Shift each image by up to this many pixels in x and y (zeros fill in).</summary>
    public int MaxShift { get; set; }
    /// <summary>Mirror half the images left–right.</summary>
    public bool HorizontalFlip { get; set; }
}

/// <summary>
/// A convolutional network: the flat feature vector is viewed as an image (channels × height × width), goes through
/// convolution blocks, is flattened, then through dense layers with dropout to the output layer.
/// </summary>
[SerializedName("cnn")]
public sealed class CnnSpec : NetworkSpec
{
    /// <summary>Image channels.</summary>
    public int Channels { get; set; } = 1;
    /// <summary>Image height.</summary>
    public int Height { get; set; }
    /// <summary>Image width.</summary>
    public int Width { get; set; }
    /// <summary>True when the vector holds pixels channel-interleaved (height × width × channels), as ExtractPixels with interleavePixelColors does.</summary>
    public bool Interleaved { get; set; }
    /// <summary>The convolution blocks, input side first.</summary>
    public ConvBlock[] ConvBlocks { get; set; } = [];
    /// <summary>Dense hidden layers after flattening.</summary>
    public int[] DenseLayers { get; set; } = [];
    /// <summary>Activation of the dense layers.</summary>
    public Activation DenseActivation { get; set; } = Activation.Relu;
    /// <summary>Dropout after each dense layer.</summary>
    public double DenseDropout { get; set; }
    /// <summary>Training-time augmentation; null for none.</summary>
    public Augmentation? Augmentation { get; set; }

    /// <inheritdoc />
    public override string Family => "CNN";

    /// <inheritdoc />
    protected override FeatureInput DefaultInput => new ImageInput(new ImageShape(Channels, Height, Width));

    /// <summary>The output shape (channels, height, width) after each block's convolution and pooling; throws naming the block whose map shrinks below 1×1.</summary>
    public IReadOnlyList<(int C, int H, int W, int ConvH, int ConvW)> Shapes()
    {
        var shapes = new List<(int, int, int, int, int)>();
        int c = Channels, h = Height, w = Width;
        for (int i = 0; i < ConvBlocks.Length; i++)
        {
            var b = ConvBlocks[i];
            string where = $"conv block {i + 1}";
            int p = b.PaddingPixels(where);
            int ch = (h + 2 * p - b.Kernel) / b.Stride + 1, cw = (w + 2 * p - b.Kernel) / b.Stride + 1;
            if (ch < 1 || cw < 1 || h + 2 * p < b.Kernel || w + 2 * p < b.Kernel)
                throw new InvalidOperationException($"CNN {where}: a {b.Kernel}×{b.Kernel} kernel does not fit the {h}×{w} input map (padding {p}); the feature map would shrink below 1×1.");
            int ph = ch, pw = cw;
            if (b.Pooling != Pooling.None)
            {
                int s = b.PoolStride ?? b.PoolSize;
                ph = ch < b.PoolSize ? 0 : (ch - b.PoolSize) / s + 1;
                pw = cw < b.PoolSize ? 0 : (cw - b.PoolSize) / s + 1;
                if (ph < 1 || pw < 1)
                    throw new InvalidOperationException($"CNN {where}: {b.PoolSize}×{b.PoolSize} pooling of the {ch}×{cw} map leaves less than 1×1.");
            }
            shapes.Add((b.Filters, ph, pw, ch, cw));
            (c, h, w) = (b.Filters, ph, pw);
        }
        return shapes;
    }

    private int FlatSize => ConvBlocks.Length == 0 ? Channels * Height * Width : Shapes()[^1] switch { var s => s.C * s.H * s.W };

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (Channels < 1 || Height < 1 || Width < 1)
            throw new InvalidOperationException($"CNN: the image shape must be positive (got {Channels}×{Height}×{Width}).");
        if ((long)Channels * Height * Width != InputSize)
            throw new InvalidOperationException(
                $"CNN: the feature vector has {InputSize} values, which is not {Channels}×{Height}×{Width} = {(long)Channels * Height * Width}. Give ImageShape to match the vector (e.g. 784 = 1×28×28).");
        for (int i = 0; i < ConvBlocks.Length; i++)
        {
            var b = ConvBlocks[i];
            if (b.Filters < 1 || b.Kernel < 1 || b.Stride < 1 || b.PoolSize < 1 || b.PoolStride is < 1)
                throw new InvalidOperationException($"CNN conv block {i + 1}: filters, kernel, stride and pool size must be at least 1.");
            if (b.Dropout is < 0 or >= 1) throw new InvalidOperationException($"CNN conv block {i + 1}: dropout must be in [0, 1).");
        }
        if (DenseLayers.Any(d => d < 1)) throw new InvalidOperationException("CNN: every dense layer needs at least 1 unit.");
        if (DenseDropout is < 0 or >= 1) throw new InvalidOperationException("CNN: dense dropout must be in [0, 1).");
        _ = Shapes();
    }

    /// <inheritdoc />
    public override nn.Module<Tensor, Tensor> Build()
    {
        var layers = new List<(string, nn.Module<Tensor, Tensor>)> { ("image", new ToImage(Channels, Height, Width, Interleaved)) };
        if (Augmentation is { } a && (a.MaxShift > 0 || a.HorizontalFlip))
            layers.Add(("augment", new Augment(a.MaxShift, a.HorizontalFlip, Height, Width)));
        int c = Channels;
        for (int i = 0; i < ConvBlocks.Length; i++)
        {
            var b = ConvBlocks[i];
            int n = i + 1;
            layers.Add(($"conv{n}", nn.Conv2d(c, b.Filters, b.Kernel, stride: b.Stride, padding: b.PaddingPixels($"conv block {n}"))));
            if (b.BatchNorm) layers.Add(($"batchnorm{n}", nn.BatchNorm2d(b.Filters)));
            layers.Add(($"{b.Activation.ToString().ToLowerInvariant()}{n}", DeepExtensions.Activations.Module(b.Activation)));
            if (b.Pooling == Pooling.Max) layers.Add(($"maxpool{n}", nn.MaxPool2d(b.PoolSize, b.PoolStride ?? b.PoolSize)));
            if (b.Pooling == Pooling.Average) layers.Add(($"avgpool{n}", nn.AvgPool2d(b.PoolSize, b.PoolStride ?? b.PoolSize)));
            if (b.Dropout > 0) layers.Add(($"dropout{n}", nn.Dropout(b.Dropout)));
            c = b.Filters;
        }
        layers.Add(("flatten", nn.Flatten()));
        long width = FlatSize;
        for (int i = 0; i < DenseLayers.Length; i++)
        {
            layers.Add(($"dense{i + 1}", nn.Linear(width, DenseLayers[i])));
            layers.Add(($"{DenseActivation.ToString().ToLowerInvariant()}_dense{i + 1}", DeepExtensions.Activations.Module(DenseActivation)));
            if (DenseDropout > 0) layers.Add(($"dropout_dense{i + 1}", nn.Dropout(DenseDropout)));
            width = DenseLayers[i];
        }
        layers.Add(("output", nn.Linear(width, OutputSize)));
        return nn.Sequential(layers);
    }

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        yield return new LayerInfo("input (image)", [Channels, Height, Width], 0);
        var shapes = Shapes();
        int c = Channels;
        for (int i = 0; i < ConvBlocks.Length; i++)
        {
            var b = ConvBlocks[i];
            var s = shapes[i];
            long convParams = (long)b.Filters * (c * b.Kernel * b.Kernel + 1);
            yield return new LayerInfo($"conv{i + 1} ({b.Filters}×{b.Kernel}×{b.Kernel}/{b.Stride}, {b.Activation})", [b.Filters, s.ConvH, s.ConvW], convParams);
            if (b.BatchNorm) yield return new LayerInfo($"batchnorm{i + 1}", [b.Filters, s.ConvH, s.ConvW], 2L * b.Filters);
            if (b.Pooling != Pooling.None)
                yield return new LayerInfo($"{(b.Pooling == Pooling.Max ? "maxpool" : "avgpool")}{i + 1} ({b.PoolSize}×{b.PoolSize}/{b.PoolStride ?? b.PoolSize})", [s.C, s.H, s.W], 0);
            if (b.Dropout > 0) yield return new LayerInfo($"dropout{i + 1} ({b.Dropout:0.##})", [s.C, s.H, s.W], 0);
            c = b.Filters;
        }
        long width = FlatSize;
        yield return new LayerInfo("flatten", [width], 0);
        for (int i = 0; i < DenseLayers.Length; i++)
        {
            yield return new LayerInfo($"dense{i + 1} (Linear, {DenseActivation})", [DenseLayers[i]], width * DenseLayers[i] + DenseLayers[i]);
            if (DenseDropout > 0) yield return new LayerInfo($"dropout_dense{i + 1} ({DenseDropout:0.##})", [DenseLayers[i]], 0);
            width = DenseLayers[i];
        }
        yield return new LayerInfo("output (Linear)", [OutputSize], width * OutputSize + OutputSize);
    }

    /// <summary>[B, C·H·W] → [B, C, H, W] (from channel-interleaved H·W·C when asked).</summary>
    internal sealed class ToImage(int c, int h, int w, bool interleaved) : nn.Module<Tensor, Tensor>("ToImage"), Onnx.IOnnxExportable
    {
        public override Tensor forward(Tensor x) =>
            interleaved ? x.view(-1, h, w, c).permute(0, 3, 1, 2).contiguous() : x.view(-1, c, h, w);

        public string ExportOnnx(Onnx.OnnxGraph g, string x, string path) => interleaved
            ? g.Transpose(g.Reshape(x, [-1, h, w, c], path), [0, 3, 1, 2], path)
            : g.Reshape(x, [-1, c, h, w], path);
    }

    /// <summary>Per-image random shift (nearest-pixel translation) and horizontal flip, only in training mode.</summary>
    internal sealed class Augment(int maxShift, bool flip, int h, int w) : nn.Module<Tensor, Tensor>("Augment"), Onnx.IOnnxExportable
    {
        public string ExportOnnx(Onnx.OnnxGraph g, string x, string path) => x;   // training only


        public override Tensor forward(Tensor x)
        {
            if (!training) return x.alias();
            long n = x.shape[0];
            // Scalars held for the calls (TorchSharp 0.107's temporaries can be finalized mid-call; see SelfAttention.Forward).
            using var half = 0.5.ToScalar();
            using var left = torch.tensor(-1f, device: x.device);
            using var right = torch.tensor(1f, device: x.device);
            using var stepX = (2f / w).ToScalar();
            using var stepY = (2f / h).ToScalar();
            using var coin = torch.rand(n, device: x.device);
            using var flips = coin.lt(half);
            using var scaleX = flip ? torch.where(flips, left, right) : torch.ones(n, device: x.device);
            using var dx = torch.randint(-maxShift, maxShift + 1, [n], device: x.device).to_type(ScalarType.Float32).mul(stepX);
            using var dy = torch.randint(-maxShift, maxShift + 1, [n], device: x.device).to_type(ScalarType.Float32).mul(stepY);
            using var zeros = torch.zeros(n, device: x.device);
            using var ones = torch.ones(n, device: x.device);
            using var theta = torch.stack([scaleX, zeros, dx, zeros, ones, dy], 1).view(n, 2, 3);
            using var grid = nn.functional.affine_grid(theta, [n, x.shape[1], h, w], align_corners: false);
            return nn.functional.grid_sample(x, grid, GridSampleMode.Nearest, GridSamplePaddingMode.Zeros, align_corners: false);
        }
    }
}
