using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Fine-tunes a pretrained ResNet18 on images for binary, multiclass or regression tasks: the ImageNet backbone's weights
/// are imported from its ONNX file (batch-norm statistics included), the images are brought to what it was trained on
/// (resized, grayscale to three channels, its channel order and mean), and a new head learns the task — first alone
/// (<see cref="PretrainedTrainerOptions.FreezeBackboneEpochs"/>), then with the backbone at a lower rate. A sibling of
/// <see cref="CnnTrainer"/> rather than an option of it: none of the CNN's layer options apply to a fixed architecture.
/// The feature column is what the CNN reads (an MLImage column or a pixel vector with an <see cref="Options.ImageShape"/>).
/// </summary>
public sealed class PretrainedCnnTrainer : PretrainedTrainerBase<PretrainedCnnTrainer.Options>
{
    /// <summary>Options for <see cref="PretrainedCnnTrainer"/>.</summary>
    public sealed class Options : PretrainedTrainerOptions
    {
        /// <summary>
        /// Creates options with the fine-tuning defaults, chosen on 400 and 1,000 Fashion-MNIST images: 8 epochs (the first
        /// with the backbone frozen), batch 16, Adam 3e-3 for the head and 3e-4 for the backbone.
        /// </summary>
        public Options()
        {
            Epochs = 8;
            BatchSize = 16;
            LearningRate = 3e-3;
            FreezeBackboneEpochs = 1;
            Accepts = [PretrainedArchitecture.ResNet18];
        }

        /// <summary>Channels × height × width of each image; null infers a square grayscale or RGB image from the vector size.</summary>
        public ImageShape? ImageShape { get; set; }

        /// <summary>
        /// The value of a white pixel: 255 for ML.NET's ExtractPixels, 1 for pixels scaled to 0–1. Null (the default) decides
        /// from the training data: 1 when no training pixel exceeds 1, else 255.
        /// </summary>
        public float? PixelMaximum { get; set; }

        /// <summary>
        /// The square size images are resized to for the backbone. ImageNet networks were trained at 224; null (the default)
        /// takes 112 for images up to 112 pixels on a side (a quarter of the compute; 28×28 images gain nothing from more) and
        /// 224 for larger ones.
        /// </summary>
        public int? Resolution { get; set; }

        /// <summary>Training-time augmentation (random shifts, horizontal flips) at <see cref="Resolution"/>; null for none.</summary>
        public Augmentation? Augmentation { get; set; }
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().PretrainedCnn(options)</c>).</summary>
    public PretrainedCnnTrainer(MLContext context, Options options) : base(context, options, nameof(PretrainedCnnTrainer)) { }

    /// <inheritdoc />
    protected override FeatureInput InputFor(DataViewType type, string column) => ImageInput.For(type, column, TrainerOptions.ImageShape);

    /// <inheritdoc />
    protected override bool Reads(SchemaShape.Column feature) => ImageInput.Reads(feature);

    /// <inheritdoc />
    protected override string Expects => ImageInput.Expected;

    /// <inheritdoc />
    protected override NetworkSpec CreateSpec(SpecRequest request)
    {
        var o = TrainerOptions;
        var shape = ((ImageInput)request.Input).Shape;
        return new PretrainedCnnSpec
        {
            InputSize = shape.Size,
            OutputSize = request.OutputSize,
            BackboneName = o.Model?.Name ?? "ResNet18",
            Blocks = o.Model is { } model ? ResNet.Blocks(Weights(model)) : [2, 2, 2, 2],
            Channels = shape.Channels,
            Height = shape.Height,
            Width = shape.Width,
            PixelMaximum = o.PixelMaximum ?? 255,
            Resolution = o.Resolution ?? (Math.Max(shape.Height, shape.Width) <= 112 ? 112 : 224),
            HeadDropout = o.HeadDropout,
            Augmentation = o.Augmentation,
        };
    }

    /// <summary>Without <see cref="Options.PixelMaximum"/>: pixels that never exceed 1 are on a 0–1 scale.</summary>
    protected override void AdaptToData(NetworkSpec spec, IReadOnlyList<float> featureMin, IReadOnlyList<float> featureMax)
    {
        if (TrainerOptions.PixelMaximum is null && featureMax.Count > 0)
            ((PretrainedCnnSpec)spec).PixelMaximum = featureMax.Max() <= 1f ? 1f : 255f;
    }

    private protected override string BackbonePrefix => "backbone.";

    private protected override void LoadPretrained(PretrainedModel model, OnnxModelContents onnx, nn.Module<Tensor, Tensor> body) => LoadBackbone(model, onnx, body);

    /// <summary>Imports a ResNet's weights into a <see cref="PretrainedCnnSpec"/> body ("backbone.*") and its mean into "input".</summary>
    internal static void LoadBackbone(PretrainedModel model, OnnxModelContents onnx, nn.Module<Tensor, Tensor> body)
    {
        OnnxWeights.LoadInto(body, onnx.Initializers, ResNet.OnnxNameMap(onnx, "backbone."), allowUnmapped: true);
        var input = body.named_children().Select(c => c.module).OfType<PretrainedCnnSpec.BackboneInput>().Single();
        input.SetMean(ChannelMean(model));
    }

    /// <summary>
    /// The per-channel mean the backbone subtracts: the mean image of the model's preprocessing graph averaged per channel
    /// (ML.NET's ResNet18: BGR order, 0–255 scale), or the usual ImageNet means in BGR order when it has none.
    /// </summary>
    private static float[] ChannelMean(PretrainedModel model)
    {
        using var stream = model.OpenPreprocessing();
        if (stream is null) return [103.939f, 116.779f, 123.68f];
        var mean = OnnxWeights.Read(stream).Values.FirstOrDefault(i => i.Shape is [1, 3, _, _])
            ?? throw new InvalidDataException($"Pretrained model '{model.Name}': its preprocessing graph has no 1×3×H×W mean image.");
        int plane = (int)(mean.Shape[2] * mean.Shape[3]);
        return Enumerable.Range(0, 3).Select(c => (float)mean.Values.AsSpan(c * plane, plane).ToArray().Average()).ToArray();
    }
}
