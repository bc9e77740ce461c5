using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>The adversarial objective of a GAN.</summary>
public enum GanLoss
{
    /// <summary>
    /// The original GAN loss with the non-saturating generator objective (binary cross-entropy on the discriminator's
    /// logit); the discriminator's score is a logit.
    /// </summary>
    Standard,
    /// <summary>
    /// Wasserstein loss with gradient penalty (WGAN-GP, Gulrajani et al. 2017): the discriminator is a critic whose score is
    /// unbounded; its gradient norm is pushed towards 1 on points between real and generated rows. No batch norm in the critic.
    /// </summary>
    WassersteinGradientPenalty,
}

/// <summary>
/// The two networks of a generative adversarial network. The generator maps a latent vector (plus a one-hot class when
/// conditional) to a feature vector; the discriminator maps a feature vector (plus the one-hot class) to one score, higher
/// meaning "more real". Both are multilayer perceptrons for vectors, or — when <see cref="Image"/> is set — a DCGAN
/// (Radford et al. 2016): transposed convolutions with batch norm up from a small map in the generator, strided
/// convolutions with leaky ReLU down in the discriminator. <see cref="NetworkSpec.Build"/> builds the discriminator.
/// </summary>
[SerializedName("gan")]
public sealed class GanSpec : NetworkSpec
{
    /// <summary>Length of the latent (noise) vector the generator reads.</summary>
    public int LatentSize { get; set; } = 64;

    /// <summary>Classes of a conditional GAN (the one-hot label both networks read); 0 for an unconditional GAN.</summary>
    public int ClassCount { get; set; }

    /// <summary>The image shape (planar channels × height × width) for a DCGAN; null for MLP networks.</summary>
    public ImageShape? Image { get; set; }

    /// <summary>MLP: the generator's hidden widths, latent side first (each Linear, batch norm, ReLU).</summary>
    public int[] GeneratorLayers { get; set; } = [];

    /// <summary>MLP: the discriminator's hidden widths, input side first (each Linear, leaky ReLU 0.2, dropout).</summary>
    public int[] DiscriminatorLayers { get; set; } = [];

    /// <summary>
    /// DCGAN: the generator's feature maps from the smallest map up; each entry is one 2× upsampling by a 4×4 transposed
    /// convolution (the last one produces the image channels), so the smallest map is the image size / 2^count.
    /// </summary>
    public int[] GeneratorFilters { get; set; } = [];

    /// <summary>DCGAN: the discriminator's filters; each entry is one 4×4 convolution of stride 2 (halving the map).</summary>
    public int[] DiscriminatorFilters { get; set; } = [];

    /// <summary>Dropout after each hidden layer of an MLP discriminator.</summary>
    public double DiscriminatorDropout { get; set; }

    /// <summary>The objective; WGAN-GP leaves batch norm out of the discriminator.</summary>
    public GanLoss Loss { get; set; } = GanLoss.Standard;

    /// <summary>Whether the generator ends in tanh (features scaled to [−1, 1]) rather than a linear layer (standardised features).</summary>
    public bool TanhOutput { get; set; }

    /// <summary>
    /// Vectors: the one-hot groups of the feature vector (a categorical column's slots, from the slot names "Column.Value").
    /// The generator outputs a (Gumbel-)softmax over each group, and an exact one-hot (its argmax) when generating; the
    /// other slots stay linear. Empty (the default, and older models): every slot linear.
    /// </summary>
    public FeatureToken[] OneHotGroups { get; set; } = [];

    /// <inheritdoc />
    public override string Family => Image is null ? "GAN (MLP)" : "GAN (DCGAN)";

    private int UpsampledHeight => Image!.Height + ((1 << GeneratorFilters.Length) - Image.Height % (1 << GeneratorFilters.Length)) % (1 << GeneratorFilters.Length);
    private int UpsampledWidth => Image!.Width + ((1 << GeneratorFilters.Length) - Image.Width % (1 << GeneratorFilters.Length)) % (1 << GeneratorFilters.Length);

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (OutputSize != 1) throw new InvalidOperationException($"{Family}: the discriminator has one output (got {OutputSize}).");
        if (LatentSize < 1) throw new InvalidOperationException($"{Family}: the latent size must be at least 1 (got {LatentSize}).");
        if (ClassCount < 0) throw new InvalidOperationException($"{Family}: the class count must be 0 (unconditional) or more (got {ClassCount}).");
        if (DiscriminatorDropout is < 0 or >= 1) throw new InvalidOperationException($"{Family}: discriminator dropout must be in [0, 1) (got {DiscriminatorDropout}).");
        if (Image is null)
        {
            if (GeneratorLayers.Length == 0 || GeneratorLayers.Any(w => w < 1))
                throw new InvalidOperationException($"{Family}: the generator needs at least one hidden layer, each of at least 1 unit.");
            if (DiscriminatorLayers.Length == 0 || DiscriminatorLayers.Any(w => w < 1))
                throw new InvalidOperationException($"{Family}: the discriminator needs at least one hidden layer, each of at least 1 unit.");
            return;
        }
        if (Image.Channels < 1 || Image.Height < 1 || Image.Width < 1)
            throw new InvalidOperationException($"{Family}: the image shape must be positive (got {Image.Channels}×{Image.Height}×{Image.Width}).");
        if ((long)Image.Size != InputSize)
            throw new InvalidOperationException($"{Family}: the feature vector has {InputSize} values, which is not {Image.Channels}×{Image.Height}×{Image.Width} = {Image.Size}. Give ImageShape to match the vector (e.g. 784 = 1×28×28).");
        if (GeneratorFilters.Length == 0 || GeneratorFilters.Any(f => f < 1))
            throw new InvalidOperationException($"{Family}: the generator needs at least one upsampling block, each with at least 1 filter.");
        if (DiscriminatorFilters.Length == 0 || DiscriminatorFilters.Any(f => f < 1))
            throw new InvalidOperationException($"{Family}: the discriminator needs at least one convolution block, each with at least 1 filter.");
        int h = Image.Height, w = Image.Width;
        for (int i = 0; i < DiscriminatorFilters.Length; i++)
        {
            h /= 2; w /= 2;
            if (h < 1 || w < 1)
                throw new InvalidOperationException($"{Family}: discriminator block {i + 1} halves the {Image.Height}×{Image.Width} image below 1×1; use fewer DiscriminatorFilters.");
        }
    }

    /// <summary>Builds the discriminator: [batch, InputSize + ClassCount] (features, then the one-hot class) → [batch, 1].</summary>
    public override nn.Module<Tensor, Tensor> Build() => BuildDiscriminator();

    /// <summary>Builds the generator: [batch, LatentSize + ClassCount] (noise, then the one-hot class) → [batch, InputSize].</summary>
    public nn.Module<Tensor, Tensor> BuildGenerator()
    {
        var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
        int input = LatentSize + ClassCount;
        if (Image is null)
        {
            int width = input;
            for (int i = 0; i < GeneratorLayers.Length; i++)
            {
                layers.Add(($"dense{i + 1}", nn.Linear(width, GeneratorLayers[i])));
                layers.Add(($"batchnorm{i + 1}", nn.BatchNorm1d(GeneratorLayers[i])));
                layers.Add(($"relu{i + 1}", nn.ReLU()));
                width = GeneratorLayers[i];
            }
            layers.Add(("output", nn.Linear(width, InputSize)));
        }
        else
        {
            int n = GeneratorFilters.Length;
            int h0 = UpsampledHeight >> n, w0 = UpsampledWidth >> n;
            layers.Add(("project", nn.Linear(input, (long)GeneratorFilters[0] * h0 * w0)));
            layers.Add(("reshape", new Reshape(GeneratorFilters[0], h0, w0)));
            layers.Add(("batchnorm0", nn.BatchNorm2d(GeneratorFilters[0])));
            layers.Add(("relu0", nn.ReLU()));
            for (int i = 0; i < n; i++)
            {
                int outC = i + 1 < n ? GeneratorFilters[i + 1] : Image.Channels;
                layers.Add(($"deconv{i + 1}", outC == 1 ? new SingleChannelDeconv(GeneratorFilters[i]) : nn.ConvTranspose2d(GeneratorFilters[i], outC, 4, stride: 2, padding: 1)));
                if (i + 1 < n)
                {
                    layers.Add(($"batchnorm{i + 1}", nn.BatchNorm2d(outC)));
                    layers.Add(($"relu{i + 1}", nn.ReLU()));
                }
            }
            layers.Add(("crop", new CropFlatten(Image.Height, Image.Width)));
        }
        if (TanhOutput) layers.Add(("tanh", nn.Tanh()));
        return nn.Sequential(layers);
    }

    /// <summary>Builds the discriminator: [batch, InputSize + ClassCount] → [batch, 1] (the score).</summary>
    public nn.Module<Tensor, Tensor> BuildDiscriminator()
    {
        var layers = new List<(string, nn.Module<Tensor, Tensor>)>();
        if (Image is null)
        {
            int width = InputSize + ClassCount;
            for (int i = 0; i < DiscriminatorLayers.Length; i++)
            {
                layers.Add(($"dense{i + 1}", nn.Linear(width, DiscriminatorLayers[i])));
                layers.Add(($"leakyrelu{i + 1}", nn.LeakyReLU(0.2)));
                if (DiscriminatorDropout > 0) layers.Add(($"dropout{i + 1}", nn.Dropout(DiscriminatorDropout)));
                width = DiscriminatorLayers[i];
            }
            layers.Add(("output", nn.Linear(width, 1)));
            return nn.Sequential(layers);
        }
        layers.Add(("image", new ImageWithClassMaps(Image.Channels, Image.Height, Image.Width, ClassCount)));
        int c = Image.Channels + ClassCount, h = Image.Height, w = Image.Width;
        for (int i = 0; i < DiscriminatorFilters.Length; i++)
        {
            layers.Add(($"conv{i + 1}", nn.Conv2d(c, DiscriminatorFilters[i], 4, stride: 2, padding: 1)));
            if (i > 0 && Loss == GanLoss.Standard) layers.Add(($"batchnorm{i + 1}", nn.BatchNorm2d(DiscriminatorFilters[i])));
            layers.Add(($"leakyrelu{i + 1}", nn.LeakyReLU(0.2)));
            c = DiscriminatorFilters[i]; h /= 2; w /= 2;
        }
        layers.Add(("flatten", nn.Flatten()));
        layers.Add(("output", nn.Linear((long)c * h * w, 1)));
        return nn.Sequential(layers);
    }

    /// <inheritdoc />
    public override IEnumerable<LayerInfo> Layers()
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        return Describe("generator", BuildGenerator(), LatentSize + ClassCount)
            .Concat(Describe("discriminator", BuildDiscriminator(), InputSize + ClassCount)).ToList();
    }

    /// <summary>Runs a two-row batch through each layer to read its output shape; counts its parameters.</summary>
    private static IEnumerable<LayerInfo> Describe(string network, nn.Module<Tensor, Tensor> module, int inputSize)
    {
        using (module)
        {
            module.eval();
            var rows = new List<LayerInfo> { new($"{network}: input", [inputSize], 0) };
            var x = torch.zeros(2, inputSize);
            foreach (var (name, layer) in module.named_children())
            {
                x = ((nn.Module<Tensor, Tensor>)layer).call(x);
                rows.Add(new LayerInfo($"{network}: {name}", x.shape[1..], layer.parameters().Sum(p => p.numel())));
            }
            return rows;
        }
    }

    /// <summary>[B, C·H·W + K] → [B, C + K, H, W]: the image, then one constant map per class (the one-hot label).</summary>
    private sealed class ImageWithClassMaps(int c, int h, int w, int k) : nn.Module<Tensor, Tensor>("ImageWithClassMaps"), Onnx.IOnnxExportable
    {
        public string ExportOnnx(Onnx.OnnxGraph g, string x, string path)
        {
            if (k == 0) return g.Reshape(x, [-1, c, h, w], path);
            long size = (long)c * h * w;
            string image = g.Reshape(g.Node("Slice", [x, g.Ints("start", 0), g.Ints("end", size), g.Ints("axes", 1)], $"{path}.pixels"), [-1, c, h, w], $"{path}.image");
            string labels = g.Reshape(g.Node("Slice", [x, g.Ints("start", size), g.Ints("end", size + k), g.Ints("axes", 1)], $"{path}.onehot"), [-1, k, 1, 1], $"{path}.labels");
            string maps = g.Node("Mul", [labels, g.Node("ConstantOfShape", [g.Ints("map_shape", 1, 1, h, w)], $"{path}.ones", ("value", OnesTensor()))], $"{path}.maps");
            maps = g.ExpandToBatch(maps, g.Dimension(x, 0, $"{path}.batch"), [k, h, w], $"{path}.maps_b");
            return g.Node("Concat", [image, maps], path, ("axis", 1L));
        }

        private static global::Onnx.TensorProto OnesTensor() =>
            new() { DataType = (int)global::Onnx.TensorProto.Types.DataType.Float, Dims = { 1 }, FloatData = { 1f } };

        public override Tensor forward(Tensor x)
        {
            long n = x.shape[0];
            if (k == 0) return x.view(n, c, h, w);
            using var image = x.narrow(1, 0, (long)c * h * w).reshape(n, c, h, w);
            using var labels = x.narrow(1, (long)c * h * w, k).reshape(n, k, 1, 1);
            using var maps = labels.expand(n, k, h, w);
            return torch.cat([image, maps], 1);
        }
    }

    /// <summary>
    /// A 4×4, stride-2 transposed convolution to one channel (a grayscale image). libtorch 2.10's CPU kernel computes a
    /// one-output-channel transposed convolution wrongly on some inputs (measured here: off by up to 1.4 against the
    /// definition, which ONNX Runtime matches to 3e-7, while two or more channels are exact), so this runs it as two
    /// channels — the second all zeros — and keeps the first. Parameters, their names and their initial values are those
    /// of <c>nn.ConvTranspose2d(c, 1, 4, 2, 1)</c>, so model files are unchanged.
    /// </summary>
    private sealed class SingleChannelDeconv : nn.Module<Tensor, Tensor>, Onnx.IOnnxExportable
    {
        private readonly TorchSharp.Modules.Parameter weight;
        private readonly TorchSharp.Modules.Parameter bias;

        public SingleChannelDeconv(int inChannels) : base("ConvTranspose2d")
        {
            using var init = nn.ConvTranspose2d(inChannels, 1, 4, stride: 2, padding: 1);
            weight = nn.Parameter(init.weight.detach().clone());
            bias = nn.Parameter(init.bias!.detach().clone());
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var w = torch.cat([weight, torch.zeros_like(weight)], 1);
            using var b = torch.cat([bias, torch.zeros_like(bias)], 0);
            using var y = nn.functional.conv_transpose2d(x, w, b, strides: [2, 2], padding: [1, 1]);
            return y.narrow(1, 0, 1).contiguous();
        }

        public string ExportOnnx(Onnx.OnnxGraph g, string x, string path) =>
            g.Node("ConvTranspose", [x, g.Initializer($"{path}.weight", weight), g.Initializer($"{path}.bias", bias)], path,
                ("kernel_shape", new long[] { 4, 4 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 }));
    }

    /// <summary>[B, C·H·W] → [B, C, H, W].</summary>
    private sealed class Reshape(int c, int h, int w) : nn.Module<Tensor, Tensor>("Reshape"), Onnx.IOnnxExportable
    {
        public string ExportOnnx(Onnx.OnnxGraph g, string x, string path) => g.Reshape(x, [-1, c, h, w], path);

        public override Tensor forward(Tensor x) => x.view(-1, c, h, w);
    }

    /// <summary>[B, C, H', W'] → the top-left H×W, flattened to [B, C·H·W].</summary>
    private sealed class CropFlatten(int h, int w) : nn.Module<Tensor, Tensor>("CropFlatten"), Onnx.IOnnxExportable
    {
        public string ExportOnnx(Onnx.OnnxGraph g, string x, string path) =>
            g.Node("Flatten", [g.Node("Slice", [x, g.Ints("start", 0, 0), g.Ints("end", h, w), g.Ints("axes", 2, 3)], $"{path}.crop")], path, ("axis", 1L));

        public override Tensor forward(Tensor x)
        {
            if (x.shape[2] == h && x.shape[3] == w) return x.flatten(1);
            using var cropped = x.narrow(2, 0, h).narrow(3, 0, w);
            return cropped.flatten(1);
        }
    }
}
