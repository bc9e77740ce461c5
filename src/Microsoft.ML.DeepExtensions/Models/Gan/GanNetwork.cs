using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>
/// Generator and discriminator of a <see cref="GanSpec"/>, with the fixed feature scaling both share (buffers, saved with
/// the weights): the networks see x → (x − center) · scale, and generated rows are mapped back to feature units.
/// </summary>
internal sealed class GanNetwork : nn.Module
{
    private readonly Tensor center;
    private readonly Tensor scale;
    private readonly Tensor class_prior;
    private readonly nn.Module<Tensor, Tensor> generator;
    private readonly nn.Module<Tensor, Tensor> discriminator;

    public GanNetwork(GanSpec spec) : base("GanNetwork")
    {
        Spec = spec;
        center = zeros(spec.InputSize);
        scale = ones(spec.InputSize);
        class_prior = spec.ClassCount > 0 ? full(spec.ClassCount, 1.0f / spec.ClassCount) : zeros(1);
        generator = spec.BuildGenerator();
        discriminator = spec.BuildDiscriminator();
        register_buffer(nameof(center), center);
        register_buffer(nameof(scale), scale);
        register_buffer(nameof(class_prior), class_prior);
        RegisterComponents();
    }

    public GanSpec Spec { get; }

    public nn.Module<Tensor, Tensor> Generator => generator;

    public nn.Module<Tensor, Tensor> Discriminator => discriminator;

    /// <summary>Sets the feature scaling and the class frequencies (used when generating without a requested class).</summary>
    public void SetStatistics(float[] featureCenter, float[] featureScale, float[]? classPrior)
    {
        using var _ = no_grad();
        using var c = tensor(featureCenter);
        using var s = tensor(featureScale);
        center.copy_(c);
        scale.copy_(s);
        if (classPrior is not null)
        {
            using var p = tensor(classPrior);
            class_prior.copy_(p);
        }
    }

    /// <summary>The class frequencies of the training data (conditional GANs).</summary>
    public float[] ClassPrior() => class_prior.cpu().data<float>().ToArray();

    /// <summary>Features in the networks' scale.</summary>
    public Tensor Scale(Tensor x) => (x - center) * scale;

    /// <summary>Network-scale rows back in feature units.</summary>
    public Tensor Unscale(Tensor x) => x / scale + center;

    /// <summary>One-hot rows of the class indices in <paramref name="y"/> (float), or null for an unconditional GAN.</summary>
    public Tensor? OneHot(Tensor y) =>
        Spec.ClassCount == 0 ? null : nn.functional.one_hot(y.to_type(ScalarType.Int64), Spec.ClassCount).to_type(ScalarType.Float32);

    /// <summary>Generated rows (network scale) from noise <paramref name="z"/> and one-hot classes.</summary>
    /// <remarks>
    /// One-hot groups (<see cref="GanSpec.OneHotGroups"/>): a Gumbel-softmax (temperature 0.2, as CTGAN) over each group while
    /// training, an exact one-hot (argmax) when <paramref name="hard"/>; their slots are unscaled (center 0, scale 1).
    /// </remarks>
    public Tensor Generate(Tensor z, Tensor? oneHot, bool hard = false)
    {
        var output = generator.call(oneHot is null ? z : cat([z, oneHot], 1));
        if (Spec.OneHotGroups.Length == 0) return output;
        var parts = new List<Tensor>();
        int next = 0;
        foreach (var g in Spec.OneHotGroups.OrderBy(g => g.Start))
        {
            if (g.Start > next) parts.Add(output.narrow(1, next, g.Start - next));
            var logits = output.narrow(1, g.Start, g.Length);
            if (hard)
                parts.Add(nn.functional.one_hot(logits.argmax(1), g.Length).to_type(output.dtype));
            else
            {
                using var low = 1e-10.ToScalar();   // held for the calls (see SelfAttention.Forward)
                using var high = (1 - 1e-7).ToScalar();
                using var temperature = 0.2.ToScalar();
                var u = rand_like(logits).clamp(low, high);
                parts.Add(softmax((logits - log(-log(u))).div(temperature), 1));
            }
            next = g.Start + g.Length;
        }
        if (next < Spec.InputSize) parts.Add(output.narrow(1, next, Spec.InputSize - next));
        return cat(parts, 1);
    }

    /// <summary>The discriminator's score [B] for network-scale rows and one-hot classes.</summary>
    public Tensor Discriminate(Tensor x, Tensor? oneHot) => discriminator.call(oneHot is null ? x : cat([x, oneHot], 1)).reshape(-1);

    /// <summary>
    /// <paramref name="count"/> generated rows in the networks' scale from noise seeded by <paramref name="seed"/>, with their
    /// class indices (conditional: <paramref name="classIndex"/>, or drawn by the class frequencies; null when unconditional).
    /// Call under no_grad in eval mode.
    /// </summary>
    public (Tensor Rows, Tensor? Classes) Sample(int count, int seed, int? classIndex, Device device)
    {
        using var gen = new torch.Generator((ulong)(uint)seed);
        var z = randn([count, Spec.LatentSize], generator: gen).to(device);
        Tensor? y = null;
        if (Spec.ClassCount > 0)
            y = (classIndex is int k
                ? full(count, k, dtype: ScalarType.Int64)
                : multinomial(class_prior.cpu(), count, replacement: true, generator: gen)).to(device);
        return (Generate(z, y is null ? null : OneHot(y), hard: true), y);
    }

    /// <summary>
    /// A PNG grid of generated images (image GANs): one row per class with <paramref name="perClass"/> samples when
    /// conditional, else <paramref name="perClass"/> × <paramref name="perClass"/>. The same seed draws the same noise.
    /// </summary>
    public byte[] ImageGrid(int perClass, int seed, Device device)
    {
        var shape = Spec.Image ?? throw new InvalidOperationException("An image grid needs a GAN trained on images (ImageShape set).");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var images = new List<float[]>();
        int rows = Spec.ClassCount > 0 ? Spec.ClassCount : perClass;
        for (int r = 0; r < rows; r++)
        {
            var f = Sample(perClass, seed + r, Spec.ClassCount > 0 ? r : null, device).Rows.cpu().data<float>().ToArray();
            for (int i = 0; i < perClass; i++) images.Add(f.AsSpan(i * shape.Size, shape.Size).ToArray());
        }
        return PngImages.Grid(images, shape, perClass, -1, 1);
    }

    /// <summary>
    /// <see cref="Realness"/> as ONNX nodes on raw features [N, InputSize]: a conditional GAN scores every row once per
    /// class in one batch (rows repeated K times beside the K one-hot labels) and keeps the highest score.
    /// </summary>
    public string ExportRealness(Onnx.OnnxGraph g, string features)
    {
        using var _ = no_grad();
        string x = g.Mul(g.Sub(features, g.Initializer(nameof(center), center), "centred"), g.Initializer(nameof(scale), scale), "scaled");
        int k = Spec.ClassCount;
        if (k == 0) return g.Reshape(Onnx.OnnxModules.Export(g, discriminator, x, "discriminator"), [-1], "realness");
        string batch = g.Dimension(x, 0, "batch");
        string repeated = g.Reshape(g.Node("Expand", [g.Node("Unsqueeze", [x, g.Ints("axes", 0)], "x_1"), g.Node("Concat", [g.Ints("k", k), batch, g.Ints("f", Spec.InputSize)], "rep_shape", ("axis", 0L))], "x_k"), [-1, Spec.InputSize], "x_rows");
        using var eye = torch.eye(k).unsqueeze(1);   // [K, 1, K]
        string labels = g.Reshape(g.Node("Expand", [g.Initializer("class_onehot", eye), g.Node("Concat", [g.Ints("k", k), batch, g.Ints("k_again", k)], "lab_shape", ("axis", 0L))], "labels_k"), [-1, k], "labels");
        string scores = Onnx.OnnxModules.Export(g, discriminator, g.Node("Concat", [repeated, labels], "with_class", ("axis", 1L)), "discriminator");
        string perClass = g.Reshape(scores, [k, -1], "per_class");
        // Max over the classes (the elementwise Max reads the same in every operator set; ReduceMax changed form in 18).
        return g.Node("Max", Enumerable.Range(0, k).Select(i => g.Node("Gather", [perClass, g.Scalar("class", i)], "class_score", ("axis", 0L))).ToArray(), "realness");
    }

    /// <summary>
    /// The generator as ONNX nodes: noise [N, LatentSize] (and, when conditional, 0-based class indices [N]) → rows in
    /// feature units, one-hot groups exact (argmax), as <see cref="Sample"/> and <see cref="Unscale"/> give them.
    /// </summary>
    public string ExportGenerator(Onnx.OnnxGraph g, string noise, string? classIndex)
    {
        using var _ = no_grad();
        string input = noise;
        if (classIndex is not null)
        {
            using var eye = torch.eye(Spec.ClassCount);
            string oneHot = g.Node("Gather", [g.Initializer("class_eye", eye), classIndex], "class_onehot", ("axis", 0L));
            input = g.Node("Concat", [noise, oneHot], "generator_input", ("axis", 1L));
        }
        string output = Onnx.OnnxModules.Export(g, generator, input, "generator");
        if (Spec.OneHotGroups.Length > 0)
        {
            var parts = new List<string>();
            int next = 0;
            string Slice(int start, int length, string hint) => g.Node("Slice", [output, g.Ints("start", start), g.Ints("end", start + length), g.Ints("axes", 1)], hint);
            foreach (var group in Spec.OneHotGroups.OrderBy(x => x.Start))
            {
                if (group.Start > next) parts.Add(Slice(next, group.Start - next, "numeric"));
                using var eye = torch.eye(group.Length);
                string best = g.Node("ArgMax", [Slice(group.Start, group.Length, "group_logits")], "group_argmax", ("axis", 1L), ("keepdims", 0L));
                parts.Add(g.Node("Gather", [g.Initializer("group_eye", eye), best], "group_onehot", ("axis", 0L)));
                next = group.Start + group.Length;
            }
            if (next < Spec.InputSize) parts.Add(Slice(next, Spec.InputSize - next, "numeric"));
            output = g.Node("Concat", [.. parts], "generated", ("axis", 1L));
        }
        return g.Add(g.Div(output, g.Initializer(nameof(scale), scale), "unscaled"), g.Initializer(nameof(center), center), "rows");
    }

    /// <summary>
    /// How real raw feature rows look: the discriminator's score (for a conditional GAN, the highest over the classes,
    /// i.e. how real the row looks as the class it most resembles).
    /// </summary>
    public Tensor Realness(Tensor features)
    {
        var x = Scale(features);
        if (Spec.ClassCount == 0) return Discriminate(x, null);
        long n = x.shape[0];
        var scores = new List<Tensor>();
        for (int k = 0; k < Spec.ClassCount; k++)
        {
            var y = full(n, k, dtype: ScalarType.Int64, device: x.device);
            scores.Add(Discriminate(x, OneHot(y)));
        }
        return stack(scores, 1).amax(1);
    }
}
