using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Trains an encoder–decoder that generates a sequence of tokens whose length differs from its input's: many-to-many
/// (translation, summarisation: the features are a token sequence — keys from <c>TokenizeIntoWords → MapValueToKey</c>)
/// or one-to-many (captioning, class-conditional generation: the features are a vector, e.g. a one-hot class). The label
/// is the target's tokens as a vector of keys that ends with the end token <see cref="Options.EndToken"/>; the model
/// scores one key per step (<c>PredictedLabel</c>, a key vector, and per-step <c>Score</c>s). Teacher forcing in training;
/// greedy, beam-search or sampled decoding at scoring (<see cref="Options.Decoding"/>). For text in and text out, use
/// <c>mlContext.Deep().TextGenerator(...)</c>, which tokenizes, appends the end token and joins the words back into text.
/// </summary>
public sealed class SequenceGeneratorTrainer : DeepTrainerBase<SequenceGeneratorTrainer.Options>
{
    /// <summary>Options for <see cref="SequenceGeneratorTrainer"/>.</summary>
    public sealed class Options : DeepTrainerOptions, ITokenSequenceOptions
    {
        /// <summary>
        /// Creates options with the generator's defaults: a one-layer GRU encoder and decoder (embeddings 128, hidden 256)
        /// with attention, 10 epochs of batch 64, Adam 2e-3, gradient clipping at 1, greedy decoding.
        /// </summary>
        public Options()
        {
            Epochs = 10;
            BatchSize = 64;
            LearningRate = 2e-3;
            GradientClipNorm = 1.0;
        }

        /// <summary>The label's end token (the key value every target ends with). Default "&lt;/s&gt;".</summary>
        public string EndToken { get; set; } = TextGenerator.EndToken;

        /// <summary>The longest output in tokens, the end token included. Default 24.</summary>
        public int MaxOutputLength { get; set; } = 24;

        /// <summary>Source tokens read per row (token-sequence features). Default 64.</summary>
        public int MaxSequenceLength { get; set; } = 64;

        /// <summary>Longer sources are truncated (default) or rejected.</summary>
        public SequenceOverflow SequenceOverflow { get; set; } = SequenceOverflow.Truncate;

        /// <summary>Recurrent (default) or transformer encoder and decoder.</summary>
        public GeneratorArchitecture Architecture { get; set; } = GeneratorArchitecture.Recurrent;

        /// <summary>Attention heads of the transformer architecture (must divide <see cref="HiddenSize"/>). Default 4.</summary>
        public int Heads { get; set; } = 4;

        /// <summary>Encoder and decoder cell of the recurrent architecture (GRU by default).</summary>
        public RecurrentCell Cell { get; set; } = RecurrentCell.Gru;

        /// <summary>Width of the token embeddings.</summary>
        public int EmbeddingSize { get; set; } = 128;

        /// <summary>Hidden units of the recurrent encoder and decoder, or the transformer's width. Default 256.</summary>
        public int HiddenSize { get; set; } = 256;

        /// <summary>Stacked recurrent layers.</summary>
        public int Layers { get; set; } = 1;

        /// <summary>Dropout on embeddings and before the output layer. Default 0.2.</summary>
        public double Dropout { get; set; } = 0.2;

        /// <summary>
        /// Copy attention (recurrent architecture, token source): the decoder may also copy a source word that is an output
        /// word — names, terms — weighing copying against generating at each step (a pointer-generator). Default on.
        /// </summary>
        public bool Copy { get; set; } = true;

        /// <summary>How tokens are chosen at scoring time (greedy by default; beam search; sampling with a seed). Validation during training is always greedy.</summary>
        public Decoding Decoding { get; set; } = new();

        /// <inheritdoc />
        public override void Validate()
        {
            base.Validate();
            Check(MaxOutputLength >= 1, nameof(MaxOutputLength), MaxOutputLength, "at least 1 (the end token counts)");
            Check(MaxSequenceLength >= 1, nameof(MaxSequenceLength), MaxSequenceLength, "at least 1");
            Check(EmbeddingSize >= 1, nameof(EmbeddingSize), EmbeddingSize, "at least 1");
            Check(HiddenSize >= 1, nameof(HiddenSize), HiddenSize, "at least 1");
            Check(Layers >= 1, nameof(Layers), Layers, "at least 1");
            Check(Heads >= 1 && (Architecture != GeneratorArchitecture.Transformer || HiddenSize % Heads == 0 && HiddenSize % 2 == 0), nameof(Heads), Heads,
                $"at least 1, and for the transformer a divisor of the even HiddenSize ({HiddenSize})");
            Check(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "in [0, 1)");
            Check(!string.IsNullOrEmpty(EndToken), nameof(EndToken), EndToken, "a non-empty token");
            ArgumentNullException.ThrowIfNull(Decoding, nameof(Decoding));
            Decoding.Validate();
        }
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().SequenceGenerator(options)</c>).</summary>
    public SequenceGeneratorTrainer(MLContext context, Options options) : base(context, options, nameof(SequenceGeneratorTrainer)) { }

    /// <summary>A vector of keys is the source sequence; anything else is read as a conditioning vector.</summary>
    protected override FeatureInput InputFor(DataViewType type, string column) =>
        TokenInput.For(type, column, TrainerOptions.MaxSequenceLength, TrainerOptions.SequenceOverflow) ?? base.InputFor(type, column);

    /// <inheritdoc />
    protected override bool Reads(SchemaShape.Column feature) => TokenInput.Reads(feature) || base.Reads(feature);

    /// <inheritdoc />
    protected override string Expects => "a token sequence (a vector of keys) or a known-size vector of Single (e.g. a one-hot class)";

    /// <summary>The output has <see cref="Options.MaxOutputLength"/> steps, whatever the source's length.</summary>
    protected override int? LabelSteps(FeatureInput input) => TrainerOptions.MaxOutputLength;

    /// <summary>Only one class per step (a key-vector label) makes sense.</summary>
    protected override bool Supports(DeepTask task) => task == DeepTask.MulticlassClassification;

    /// <inheritdoc />
    protected override NetworkSpec CreateSpec(SpecRequest request)
    {
        var o = TrainerOptions;
        int steps = o.MaxOutputLength;
        int end = 0;
        if (request.LabelColumn is { } label)
        {
            if (label.Type is not VectorDataViewType { ItemType: KeyDataViewType } || !label.HasKeyValues())
                throw new ArgumentException(
                    $"Label column '{label.Name}' must be the target's tokens as a vector of keys with their words (TokenizeIntoWords → MapValueToKey), ending with '{o.EndToken}'; found {label.Type}.", label.Name);
            if (((VectorDataViewType)label.Type).Size is > 0 and var size && size != steps)
                throw new ArgumentException($"Label column '{label.Name}' has {size} steps; MaxOutputLength is {steps}. Use a variable-length key vector.", label.Name);
            var words = default(VBuffer<ReadOnlyMemory<char>>);
            label.GetKeyValues(ref words);
            end = words.DenseValues().Select(v => v.ToString()).ToList().IndexOf(o.EndToken);
            if (end < 0)
                throw new ArgumentException(
                    $"Label column '{label.Name}' has no end token '{o.EndToken}' among its {words.Length} key values; append it to every target before MapValueToKey (TextGenerator does), or set EndToken.", label.Name);
        }
        return new SequenceGeneratorSpec
        {
            CopyClasses = o.Copy && o.Architecture == GeneratorArchitecture.Recurrent ? CopyTable(request, request.LabelColumn) : [],
            InputSize = request.Input.Size,
            OutputSize = request.OutputSize,
            OutputSteps = steps,
            EndClass = end,
            Cell = o.Cell,
            EmbeddingSize = o.EmbeddingSize,
            HiddenSize = o.HiddenSize,
            Depth = o.Layers,
            Architecture = o.Architecture,
            Heads = o.Heads,
            Dropout = o.Dropout,
            SourceColumnName = o.FeatureColumnName,
            Decoding = new Decoding { NoRepeatNgramSize = 0 },   // validation during training: plain greedy
        };
    }

    /// <summary>For each source id (0 padding, 1..V the feature column's keys, V + 1 unknown), the label's class of the same word, or −1.</summary>
    private static int[] CopyTable(SpecRequest request, DataViewSchema.Column? label)
    {
        if (request.Input is not TokenInput tokens || label is not { } l || request.FeatureColumn is not { } f || !f.HasKeyValues()) return [];
        var sources = default(VBuffer<ReadOnlyMemory<char>>);
        f.GetKeyValues(ref sources);
        var targets = default(VBuffer<ReadOnlyMemory<char>>);
        l.GetKeyValues(ref targets);
        var classOf = new Dictionary<string, int>();
        int c = 0;
        foreach (var v in targets.DenseValues()) classOf.TryAdd(v.ToString(), c++);
        var table = Enumerable.Repeat(-1, tokens.EmbeddingRows).ToArray();
        int id = 1;
        foreach (var v in sources.DenseValues().Take(tokens.VocabularySize))
            table[id++] = classOf.TryGetValue(v.ToString(), out int k) ? k : -1;
        return table;
    }

    /// <summary>Validation during training decodes plainly greedily; the fitted model decodes as <see cref="Options.Decoding"/> says.</summary>
    protected override void Trained(NetworkSpec spec) => ((SequenceGeneratorSpec)spec).Decoding = TrainerOptions.Decoding.Copy();
}
