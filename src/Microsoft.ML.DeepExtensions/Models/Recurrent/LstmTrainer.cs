using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;

namespace Microsoft.ML.DeepExtensions;

/// <summary>A numeric sequence's shape: <paramref name="Steps"/> time steps × <paramref name="Features"/> values per step (step-major).</summary>
/// <param name="Steps">Time steps T.</param>
/// <param name="Features">Values per step F.</param>
public sealed record SequenceShape(int Steps, int Features)
{
    /// <summary>Values in the flattened sequence.</summary>
    public int Size => Steps * Features;

    /// <inheritdoc />
    public override string ToString() => $"{Steps}×{Features}";
}

/// <summary>
/// Trains a recurrent network — vanilla RNN (tanh), LSTM or GRU (<see cref="Options.Cell"/>) — for binary, multiclass or
/// regression tasks on sequences. The feature column is either a token sequence — a key vector from ML.NET's
/// <c>TokenizeIntoWords → MapValueToKey</c>, embedded and packed per batch so padding never changes a result — or a float
/// vector read as T steps × F features (<see cref="Options.SequenceShape"/>; default: T = the vector size, F = 1), or a
/// variable-length float vector of steps × F values (each row its own number of steps, at most
/// <see cref="Options.MaxSequenceLength"/>, packed by length so padding never changes a result). Many-to-one uses the last step's state;
/// many-to-many outputs one value (or class) per step. Gradient clipping is on by default (BPTT's exploding gradients);
/// <see cref="Options.TruncatedBpttSteps"/> limits how far gradients flow back. Create it with <c>mlContext.Deep().Lstm(...)</c>.
/// </summary>
public sealed class LstmTrainer : DeepTrainerBase<LstmTrainer.Options>
{
    /// <summary>Options for <see cref="LstmTrainer"/>.</summary>
    public sealed class Options : DeepTrainerOptions, ITokenSequenceOptions
    {
        /// <summary>Creates options with the recurrent defaults: one LSTM layer of 64, 10 epochs, batch 64, Adam 2e-3, gradient norm clipped to 1.</summary>
        public Options()
        {
            BatchSize = 64;
            LearningRate = 2e-3;
            GradientClipNorm = 1;
        }

        /// <summary>The cell: <see cref="RecurrentCell.Lstm"/> (default), <see cref="RecurrentCell.Gru"/> or <see cref="RecurrentCell.Rnn"/> (tanh).</summary>
        public RecurrentCell Cell { get; set; } = RecurrentCell.Lstm;

        /// <summary>Hidden units per layer (and direction). Default 64.</summary>
        public int HiddenSize { get; set; } = 64;

        /// <summary>Stacked recurrent layers. Default 1.</summary>
        public int NumLayers { get; set; } = 1;

        /// <summary>Read each sequence forwards and backwards. Default false.</summary>
        public bool Bidirectional { get; set; }

        /// <summary>Dropout between stacked layers and before the dense head. Default 0.</summary>
        public double Dropout { get; set; }

        /// <summary>
        /// Steps × features of a numeric sequence (step-major: step 0's F values, then step 1's, ...); null reads the vector as
        /// T steps of one value. For a variable-length vector only <see cref="SequenceShape.Features"/> is used: each row has
        /// its own number of steps (values / F), at most <see cref="MaxSequenceLength"/>.
        /// </summary>
        public SequenceShape? SequenceShape { get; set; }

        /// <summary>
        /// Token sequences (a key vector from <c>TokenizeIntoWords → MapValueToKey</c>) and variable-length numeric
        /// sequences: tokens (steps) read per row at most. Default 100.
        /// </summary>
        public int MaxSequenceLength { get; set; } = 100;

        /// <summary>
        /// Sequences longer than <see cref="MaxSequenceLength"/>: keep the first tokens or steps (<see cref="SequenceOverflow.Truncate"/>,
        /// the default), keep the most recent ones (<see cref="SequenceOverflow.KeepLast"/>, what a forecaster wants) or throw.
        /// </summary>
        public SequenceOverflow SequenceOverflow { get; set; } = SequenceOverflow.Truncate;

        /// <summary>Token sequences: embedding dimensions per token (the embedding is learned from scratch). Default 64.</summary>
        public int EmbeddingSize { get; set; } = 64;

        /// <summary>Token sequences, training only: the chance that a real token is replaced by the unknown id (word dropout), so out-of-vocabulary words at scoring time mean something. Default 0.1.</summary>
        public double UnknownTokenRate { get; set; } = 0.1;

        /// <summary>
        /// Many-to-one (default; a vector label gives a multi-output forecast from the last state) or many-to-many: one
        /// output per step from that step's state. The label is a vector of Single with one value per step (Score is then a
        /// vector), or — for token sequences — a vector of keys with one class per token (Score holds MaxSequenceLength ×
        /// classes probabilities and PredictedLabel a key per step; steps past a row's last token are padding, excluded from
        /// the loss, and their predictions carry no meaning).
        /// </summary>
        public SequenceOutput Output { get; set; } = SequenceOutput.ManyToOne;

        /// <summary>Dense ReLU layers between the recurrent state and the output layer. Default none.</summary>
        public int[] DenseLayers { get; set; } = [];

        /// <summary>Truncated BPTT: gradients flow back at most this many steps while training (the state still carries over); null = full BPTT.</summary>
        public int? TruncatedBpttSteps { get; set; }

        /// <inheritdoc />
        public override void Validate()
        {
            base.Validate();
            Check(UnknownTokenRate is >= 0 and < 1, nameof(UnknownTokenRate), UnknownTokenRate, "in [0, 1)");
            Check(EmbeddingSize >= 1, nameof(EmbeddingSize), EmbeddingSize, "at least 1");
            Check(MaxSequenceLength >= 1, nameof(MaxSequenceLength), MaxSequenceLength, "at least 1");
            Check(HiddenSize >= 1, nameof(HiddenSize), HiddenSize, "at least 1");
            Check(NumLayers >= 1, nameof(NumLayers), NumLayers, "at least 1");
            Check(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "in [0, 1)");
            Check(TruncatedBpttSteps is null or >= 1, nameof(TruncatedBpttSteps), TruncatedBpttSteps, "at least 1 or null");
            Check(SequenceShape is null || SequenceShape.Steps >= 1 && SequenceShape.Features >= 1, nameof(SequenceShape), SequenceShape, "at least 1 step × 1 feature");
        }
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().Lstm(options)</c>).</summary>
    public LstmTrainer(MLContext context, Options options) : base(context, options, nameof(LstmTrainer)) { }

    /// <summary>Each of the F features is standardised with one mean and deviation over all steps.</summary>
    protected override int StatisticsPeriod(int inputSize) => Shape(inputSize).Features;

    private SequenceShape Shape(int inputSize)
    {
        var o = TrainerOptions;
        var shape = o.SequenceShape ?? new SequenceShape(inputSize, 1);
        if (shape.Size != inputSize)
            throw new ArgumentException(
                $"Feature column '{o.FeatureColumnName}' has {inputSize} values, but SequenceShape {shape} needs {shape.Size}.", o.FeatureColumnName);
        return shape;
    }

    /// <summary>
    /// A vector of keys is read as token ids; a variable-length vector of Single as steps of
    /// <see cref="SequenceShape.Features"/> values (default 1), at most <see cref="Options.MaxSequenceLength"/> steps; a
    /// known-size vector as <see cref="Options.SequenceShape"/> (default: one value per step).
    /// </summary>
    protected override FeatureInput InputFor(DataViewType type, string column)
    {
        var o = TrainerOptions;
        if (TokenInput.For(type, column, o.MaxSequenceLength, o.SequenceOverflow) is { } tokens) return tokens;
        if (!SequenceInput.Reads(type)) return base.InputFor(type, column);
        var sequence = new SequenceInput(o.SequenceShape?.Features ?? 1, o.MaxSequenceLength, o.SequenceOverflow);
        sequence.Validate();
        return sequence;
    }

    /// <inheritdoc />
    protected override bool Reads(SchemaShape.Column feature) => TokenInput.Reads(feature) || SequenceInput.Reads(feature) || base.Reads(feature);

    /// <inheritdoc />
    protected override string Expects => "a known-size vector of Single (T × F steps), a variable-length vector of Single, or a token sequence (a vector of keys)";

    /// <inheritdoc />
    protected override NetworkSpec CreateSpec(SpecRequest request)
    {
        var o = TrainerOptions;
        int outputSize = request.OutputSize;
        if (request.Input is SequenceInput input)
        {
            if (o.Output == SequenceOutput.ManyToMany)
                throw new ArgumentException(
                    $"Feature column '{o.FeatureColumnName}' holds variable-length sequences; many-to-many needs a fixed number of steps (a known-size vector with SequenceShape).",
                    o.FeatureColumnName);
            return NewSpec(input.Size, input.MaxSteps, input.Features, outputSize, 1);
        }
        int inputSize = request.Input.Size;
        var task = request.Task;
        var shape = Shape(inputSize);
        // Many-to-many: one output per step — a value (vector-of-Single label of T values) or K class scores (key-vector label).
        int perStep = outputSize / shape.Steps;
        if (o.Output == SequenceOutput.ManyToMany && (task == DeepTask.BinaryClassification || perStep < 1 || perStep * shape.Steps != outputSize
                                                      || task == DeepTask.Regression && perStep != 1))
            throw new ArgumentException(
                $"Many-to-many needs a label with one value per step: a vector of {shape.Steps} Single values or a vector of keys in label column '{o.LabelColumnName}' " +
                $"(got {task} with {outputSize} output(s)).", o.LabelColumnName);
        return NewSpec(inputSize, shape.Steps, shape.Features, outputSize, o.Output == SequenceOutput.ManyToMany ? perStep : 1);
    }

    private RecurrentSpec NewSpec(int inputSize, int steps, int features, int outputSize, int outputsPerStep)
    {
        var o = TrainerOptions;
        return new RecurrentSpec
        {
            InputSize = inputSize,
            OutputSize = outputSize,
            Steps = steps,
            StepFeatures = features,
            Cell = o.Cell,
            EmbeddingSize = o.EmbeddingSize,
            UnknownTokenRate = o.UnknownTokenRate,
            HiddenSize = o.HiddenSize,
            NumLayers = o.NumLayers,
            Bidirectional = o.Bidirectional,
            Dropout = o.Dropout,
            Output = o.Output,
            OutputsPerStep = outputsPerStep,
            DenseLayers = o.DenseLayers,
            TruncatedBpttSteps = o.TruncatedBpttSteps,
        };
    }
}
