using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>
/// A pretrained ResNet18 with a new head: the pixel vector is brought to what the backbone was trained on (0–255 scale,
/// three channels — a grayscale image is repeated —, the backbone's channel order, its per-channel mean subtracted,
/// resized to <see cref="Resolution"/>), goes through the backbone to 512 pooled features, then dropout and a linear
/// output layer. The backbone's parameters are named "backbone.*".
/// </summary>
[SerializedName("pretrained-cnn")]
public sealed class PretrainedCnnSpec : NetworkSpec
{
    /// <summary>The backbone's name as the summary shows it.</summary>
    public string BackboneName { get; set; } = "ResNet18";
    /// <summary>Basic blocks in each of the backbone's four stages ([2, 2, 2, 2] is torchvision's ResNet18; ML.NET's is [2, 2, 2, 3]).</summary>
    public int[] Blocks { get; set; } = [2, 2, 2, 2];
    /// <summary>Image channels in the feature vector (1, 3 or 4; alpha is dropped).</summary>
    public int Channels { get; set; } = 3;
    /// <summary>Image height.</summary>
    public int Height { get; set; }
    /// <summary>Image width.</summary>
    public int Width { get; set; }
    /// <summary>The value of a white pixel in the feature vector: 255 for ML.NET's ExtractPixels, 1 for pixels scaled to 0–1.</summary>
    public float PixelMaximum { get; set; } = 255;
    /// <summary>The square size images are resized to before the backbone.</summary>
    public int Resolution { get; set; } = 112;
    /// <summary>The backbone reads blue, green, red (as ML.NET's ResNet18, converted from CNTK) rather than red, green, blue.</summary>
    public bool Bgr { get; set; } = true;
    /// <summary>Dropout before the output layer.</summary>
    public double HeadDropout { get; set; }
    /// <summary>Training-time augmentation at <see cref="Resolution"/>; null for none.</summary>
    public Augmentation? Augmentation { get; set; }

    /// <inheritdoc />
    public override string Family => $"{BackboneName} (pretrained)";

    /// <inheritdoc />
    public override bool NormalizesInput => true;

    /// <inheritdoc />
    protected override FeatureInput DefaultInput => new ImageInput(new ImageShape(Channels, Height, Width));

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (Channels is not (1 or 3 or 4)) throw new InvalidOperationException($"{Family}: images need 1, 3 or 4 channels (got {Channels}).");
        if (Height < 1 || Width < 1 || (long)Channels * Height * Width != InputSize)
            throw new InvalidOperationException($"{Family}: the feature vector has {InputSize} values, which is not {Channels}×{Height}×{Width}; give ImageShape to match it.");
        if (Blocks is not { Length: 4 } || Blocks.Any(b => b < 1)) throw new InvalidOperationException($"{Family}: Blocks must give 4 stages of at least 1 block each.");
        if (Resolution < 32) throw new InvalidOperationException($"{Family}: Resolution must be at least 32 pixels (ResNet18 downsamples by 32); got {Resolution}.");
        if (!(PixelMaximum > 0)) throw new InvalidOperationException($"{Family}: PixelMaximum must be positive (got {PixelMaximum}).");
        if (HeadDropout is < 0 or >= 1) throw new InvalidOperationException($"{Family}: HeadDropout must be in [0, 1).");
    }

    /// <inheritdoc />
    public override nn.Module<Tensor, Tensor> Build()
    {
        var layers = new List<(string, nn.Module<Tensor, Tensor>)> { ("input", new BackboneInput(Channels, Height, Width, 255f / PixelMaximum, Resolution, Bgr)) };
        if (Augmentation is { } a && (a.MaxShift > 0 || a.HorizontalFlip))
            layers.Add(("augment", new CnnSpec.Augment(a.MaxShift, a.HorizontalFlip, Resolution, Resolution)));
        layers.Add(("backbone", new ResNet(Blocks)));
        if (HeadDropout > 0) layers.Add(("dropout", nn.Dropout(HeadDropout)));
        layers.Add(("output", nn.Linear(ResNet.Features, OutputSize)));
        return nn.Sequential(layers);
    }

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        yield return new LayerInfo($"input ({Channels}×{Height}×{Width} → 3×{Resolution}×{Resolution}{(Bgr ? ", BGR" : "")})", [3, Resolution, Resolution], 0);
        yield return new LayerInfo($"backbone ({BackboneName}, pooled)", [ResNet.Features], ResNet.ParameterCount(Blocks));
        if (HeadDropout > 0) yield return new LayerInfo($"dropout ({HeadDropout:0.##})", [ResNet.Features], 0);
        yield return new LayerInfo("output (Linear)", [OutputSize], (long)ResNet.Features * OutputSize + OutputSize);
    }

    /// <summary>
    /// [B, C·H·W] pixels → [B, 3, R, R] as the backbone was trained: scaled to 0–255, three channels, its channel order, the
    /// per-channel <c>mean</c> (a buffer, loaded with the pretrained weights) subtracted, bilinearly resized.
    /// </summary>
    internal sealed class BackboneInput : nn.Module<Tensor, Tensor>, IOnnxExportable
    {
        private readonly int _c, _h, _w, _resolution;
        private readonly float _scale;
        private readonly bool _bgr;
        private readonly Tensor mean;

        public BackboneInput(int c, int h, int w, float scale, int resolution, bool bgr) : base(nameof(BackboneInput))
        {
            (_c, _h, _w, _scale, _resolution, _bgr) = (c, h, w, scale, resolution, bgr);
            mean = zeros(3);
            register_buffer(nameof(mean), mean);
        }

        /// <summary>Sets the per-channel mean (in the backbone's channel order, 0–255 scale).</summary>
        public void SetMean(float[] values)
        {
            using var _ = no_grad();
            using var t = tensor(values);
            mean.copy_(t);
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            using var scale = _scale.ToScalar();
            var image = x.view(-1, _c, _h, _w).mul(scale);
            image = _c == 1 ? image.expand(-1, 3, -1, -1) : _c == 4 ? image.narrow(1, 0, 3) : image;
            if (_bgr) image = image.flip(1);
            image = image - mean.view(1, 3, 1, 1);
            if (_h != _resolution || _w != _resolution)
                image = nn.functional.interpolate(image, [_resolution, _resolution], mode: InterpolationMode.Bilinear, align_corners: false);
            return image.contiguous().MoveToOuterDisposeScope();
        }

        public string ExportOnnx(OnnxGraph g, string x, string path)
        {
            string image = g.Mul(g.Reshape(x, [-1, _c, _h, _w], path), g.Constant($"{path}.scale", _scale), $"{path}.scaled");
            if (_c == 1) image = g.Node("Concat", [image, image, image], $"{path}.rgb", ("axis", 1L));
            if (_c == 4) image = g.Node("Slice", [image, g.Ints("start", 0), g.Ints("end", 3), g.Ints("axes", 1)], $"{path}.rgb");
            if (_bgr) image = g.Node("Gather", [image, g.Ints("bgr", 2, 1, 0)], $"{path}.bgr", ("axis", 1L));
            using var m = mean.view(1, 3, 1, 1);
            image = g.Sub(image, g.Initializer($"{path}.mean", m), $"{path}.centred");
            if (_h == _resolution && _w == _resolution) return image;
            string scales = g.Initializer(g.Fresh($"{path}.scales"), [1f, 1f, _resolution / (float)_h, _resolution / (float)_w], [4]);
            return g.Node("Resize", [image, "", scales], path, ("mode", "linear"), ("coordinate_transformation_mode", "half_pixel"));
        }
    }
}
