using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Fine-tunes a pretrained BERT-layout text encoder (all-MiniLM-L6-v2 from the <c>Microsoft.ML.DeepExtensions.Pretrained</c>
/// package) for binary, multiclass or regression tasks, straight from a raw text column: WordPiece tokenization with the
/// model's vocabulary (<see cref="WordPieceInput"/>), the encoder's weights imported from its ONNX file, mean pooling and a
/// new head. All layers learn by default (the encoder at <see cref="PretrainedTrainerOptions.BackboneLearningRateFactor"/>
/// × the rate); <see cref="Options.TrainableLayers"/> fine-tunes only the top ones. A sibling of
/// <see cref="TransformerTrainer"/>: the architecture is the pretrained one, and the input is text, not token keys.
/// </summary>
public sealed class PretrainedTransformerTrainer : PretrainedTrainerBase<PretrainedTransformerTrainer.Options>
{
    /// <summary>Options for <see cref="PretrainedTransformerTrainer"/>.</summary>
    public sealed class Options : PretrainedTrainerOptions
    {
        /// <summary>Creates options with the fine-tuning defaults: 3 epochs, batch 32, AdamW 1e-3 for the head and 5e-5 for the encoder, weight decay 0.01.</summary>
        public Options()
        {
            Epochs = 3;
            BatchSize = 32;
            Optimizer = DeepOptimizer.AdamW;
            WeightDecay = 0.01;
            BackboneLearningRateFactor = 0.05;
            FeatureColumnName = "Text";
            Accepts = [PretrainedArchitecture.Bert];
        }

        /// <summary>Word pieces read per text, [CLS] and [SEP] included; longer texts are truncated. Each batch is cut to its longest text.</summary>
        public int MaxTokens { get; set; } = 128;

        /// <summary>Fine-tune only the top k encoder layers (the embeddings and lower layers stay as pretrained); null fine-tunes all.</summary>
        public int? TrainableLayers { get; set; }

        /// <summary>Dropout inside the encoder while fine-tuning.</summary>
        public double EncoderDropout { get; set; } = 0.1;

        /// <inheritdoc />
        public override void Validate()
        {
            base.Validate();
            Check(MaxTokens is >= 3 and <= 4096, nameof(MaxTokens), MaxTokens, "between 3 and 4096");
            Check(TrainableLayers is null or >= 0, nameof(TrainableLayers), TrainableLayers, "0 or more, or null");
            Check(EncoderDropout is >= 0 and < 1, nameof(EncoderDropout), EncoderDropout, "in [0, 1)");
        }
    }

    private (PretrainedModel Model, string[] Vocabulary)? _vocabulary;
    private int _layers;

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().PretrainedTransformer(options)</c>).</summary>
    public PretrainedTransformerTrainer(MLContext context, Options options) : base(context, options, nameof(PretrainedTransformerTrainer)) { }

    /// <summary>A Text column, tokenized with the model's vocabulary.</summary>
    protected override FeatureInput InputFor(DataViewType type, string column)
    {
        var input = InputOfSize(TrainerOptions.MaxTokens);
        input.Check(type, column);
        return input;
    }

    /// <summary>Word-piece ids of <paramref name="inputSize"/> tokens with the model's vocabulary.</summary>
    protected override FeatureInput InputOfSize(int inputSize)
    {
        var model = TrainerOptions.Model ?? throw new ArgumentException("Model must name the pretrained text encoder (e.g. PretrainedModels.MiniLmL6).", nameof(Options.Model));
        if (_vocabulary is not { } v || !ReferenceEquals(v.Model, model))
        {
            using var stream = model.OpenVocabulary();
            _vocabulary = v = (model, WordPieceInput.ReadVocabulary(stream));
        }
        return new WordPieceInput(v.Vocabulary, inputSize);
    }

    /// <inheritdoc />
    protected override bool Reads(SchemaShape.Column feature) => WordPieceInput.Reads(feature);

    /// <inheritdoc />
    protected override string Expects => "a Text column (the raw text)";

    /// <inheritdoc />
    protected override NetworkSpec CreateSpec(SpecRequest request)
    {
        var o = TrainerOptions;
        var shape = o.Model is { } model ? BertShape.From(Weights(model), model.AttentionHeads) : new PretrainedTransformerSpec().Shape;
        _layers = shape.Layers;
        return new PretrainedTransformerSpec
        {
            InputSize = request.Input.Size,
            OutputSize = request.OutputSize,
            EncoderName = o.Model?.Name ?? "BERT",
            Shape = shape,
            EncoderDropout = o.EncoderDropout,
            HeadDropout = o.HeadDropout,
        };
    }

    private protected override string BackbonePrefix => "bert.";

    /// <summary>With <see cref="Options.TrainableLayers"/> = k: the embeddings and the layers below the top k.</summary>
    private protected override bool IsFixed(string name)
    {
        if (TrainerOptions.TrainableLayers is not int k || k >= _layers) return false;
        if (name.StartsWith("bert.embeddings.", StringComparison.Ordinal)) return true;
        const string prefix = "bert.encoder.layer.";
        return name.StartsWith(prefix, StringComparison.Ordinal) && int.Parse(name[prefix.Length..].Split('.')[0]) < _layers - k;
    }

    private protected override void LoadPretrained(PretrainedModel model, OnnxModelContents onnx, nn.Module<Tensor, Tensor> body) => LoadEncoder(onnx, body);

    /// <summary>Imports a BERT encoder's weights into a <see cref="PretrainedTransformerSpec"/> body ("bert.*").</summary>
    internal static void LoadEncoder(OnnxModelContents onnx, nn.Module<Tensor, Tensor> body)
    {
        var encoder = body.named_children().Select(c => c.module).OfType<BertEncoder>().Single();
        var (map, initializers) = BertEncoder.OnnxNameMap(encoder, onnx, "bert.");
        OnnxWeights.LoadInto(body, initializers, map, allowUnmapped: true);
    }
}
