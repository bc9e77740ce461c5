using Microsoft.ML.DeepExtensions.Models;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>
/// The deep families of Microsoft.ML.DeepExtensions as comparison candidates. Each is one <see cref="CandidateFactory"/>:
/// its tasks, the input it needs, its search space (width/depth, learning rate, dropout; epochs are the successive-halving
/// resource) and a builder that turns sampled hyper-parameters into the family's trainer options.
/// </summary>
public static class DeepCandidates
{
    private static readonly DeepTask[] AllTasks = [DeepTask.BinaryClassification, DeepTask.MulticlassClassification, DeepTask.Regression];

    /// <summary>Every deep family: perceptron, MLP, CNN, ViT, FT-Transformer (vectors); LSTM and transformer (token sequences).</summary>
    public static IReadOnlyList<CandidateFactory> All => [Perceptron, Mlp, Cnn, Vit, FtTransformer, Lstm, Transformer];

    /// <summary>Rosenblatt's perceptron (binary; calibrated with Platt scaling by the comparison for its probabilities).</summary>
    public static CandidateFactory Perceptron { get; } = new()
    {
        Name = "Perceptron",
        Kind = CandidateKind.Deep,
        Tasks = [DeepTask.BinaryClassification],
        MaxEpochs = 10,
        SearchSpace = new SearchSpace()
            .Add("LearningRate", 1.0, 0.1)
            .Add("Averaged", true, false),
        Build = (c, s) => c.Context.Deep().Perceptron(s.Configure(c, new PerceptronTrainer.Options
        {
            LearningRate = s.Parameters.Get("LearningRate", 1.0),
            Averaged = s.Parameters.Get("Averaged", true),
            ValidationFraction = 0.1,   // trials are ranked on held-out rows of the training part
        })),
    };

    /// <summary>Multilayer perceptron (every task).</summary>
    public static CandidateFactory Mlp { get; } = new()
    {
        Name = "MLP",
        Kind = CandidateKind.Deep,
        Tasks = AllTasks,
        MaxEpochs = 10,
        SearchSpace = new SearchSpace()
            .Add("HiddenLayers", new[] { 256, 128 }, [128], [512, 256], [128, 128, 64])
            .Add("LearningRate", 1e-3, 3e-3, 3e-4)
            .Add("Dropout", 0.1, 0.0, 0.3),
        Build = (c, s) => c.Context.Deep().Mlp(s.Configure(c, new MlpTrainer.Options
        {
            HiddenLayers = s.Parameters.Get("HiddenLayers", new[] { 256, 128 }),
            LearningRate = s.Parameters.Get("LearningRate", 1e-3),
            Dropout = s.Parameters.Get("Dropout", 0.1),
        })),
    };

    /// <summary>Convolutional network (every task; needs the data's <see cref="ImageShape"/>).</summary>
    public static CandidateFactory Cnn { get; } = new()
    {
        Name = "CNN",
        Kind = CandidateKind.Deep,
        Tasks = AllTasks,
        Inputs = CandidateInputs.Image,
        MaxEpochs = 5,
        SearchSpace = new SearchSpace()
            .Add("Filters", new[] { 32, 64 }, [16, 32])
            .Add("DenseLayers", new[] { 128 }, [64])
            .Add("LearningRate", 1e-3, 3e-3)
            .Add("DenseDropout", 0.3, 0.1, 0.5),
        Build = (c, s) => c.Context.Deep().Cnn(s.Configure(c, new CnnTrainer.Options
        {
            ImageShape = c.ImageShape,
            ConvBlocks = s.Parameters.Get("Filters", new[] { 32, 64 })
                .Select(f => new ConvBlock { Filters = f, Kernel = 3, Padding = "same", BatchNorm = true, Pooling = Pooling.Max, PoolSize = 2 })
                .ToArray(),
            DenseLayers = s.Parameters.Get("DenseLayers", new[] { 128 }),
            LearningRate = s.Parameters.Get("LearningRate", 1e-3),
            DenseDropout = s.Parameters.Get("DenseDropout", 0.3),
        })),
    };

    /// <summary>Vision transformer (every task; needs the data's <see cref="ImageShape"/>): patches as tokens.</summary>
    public static CandidateFactory Vit { get; } = new()
    {
        Name = "ViT",
        Kind = CandidateKind.Deep,
        Tasks = AllTasks,
        Inputs = CandidateInputs.Image,
        MaxEpochs = 8,
        SearchSpace = new SearchSpace()
            .Add("PatchSize", 4, 2, 7)
            .Add("Layers", 2, 4, 6)
            .Add("LearningRate", 2e-3, 1e-3),
        Build = (c, s) => c.Context.Deep().Vit(s.Configure(c, new VitTrainer.Options
        {
            ImageShape = c.ImageShape,
            PatchSize = TilingPatch(s.Parameters.Get("PatchSize", 4), c.ImageShape!),
            Layers = s.Parameters.Get("Layers", 2),
            LearningRate = s.Parameters.Get("LearningRate", 2e-3),
        })),
    };

    /// <summary>The largest patch side up to <paramref name="wanted"/> that tiles the image (1 always does).</summary>
    private static int TilingPatch(int wanted, ImageShape shape) =>
        Enumerable.Range(1, wanted).Last(p => shape.Height % p == 0 && shape.Width % p == 0);

    /// <summary>FT-Transformer for tabular vectors (every task): each feature (or one-hot group) is a token.</summary>
    public static CandidateFactory FtTransformer { get; } = new()
    {
        Name = "FT-Transformer",
        Kind = CandidateKind.Deep,
        Tasks = AllTasks,
        MaxEpochs = 8,
        SearchSpace = new SearchSpace()
            .Add("Dimension", 64, 32)
            .Add("Layers", 3, 2)
            .Add("LearningRate", 1e-3, 3e-4)
            .Add("Dropout", 0.1, 0.2),
        Build = (c, s) => c.Context.Deep().FtTransformer(s.Configure(c, new FtTransformerTrainer.Options
        {
            Dimension = s.Parameters.Get("Dimension", 64),
            Layers = s.Parameters.Get("Layers", 3),
            LearningRate = s.Parameters.Get("LearningRate", 1e-3),
            Dropout = s.Parameters.Get("Dropout", 0.1),
        })),
    };

    /// <summary>
    /// Recurrent network on token sequences (every task): a key-vector feature column, or else the raw text column,
    /// which the candidate tokenizes itself (see <see cref="CandidateFactory.TokenizesText"/>).
    /// </summary>
    public static CandidateFactory Lstm { get; } = new()
    {
        Name = "LSTM",
        Kind = CandidateKind.Deep,
        Tasks = AllTasks,
        Inputs = CandidateInputs.Tokens,
        TokenizesText = true,
        MaxEpochs = 8,
        SearchSpace = new SearchSpace()
            .Add("Cell", RecurrentCell.Lstm, RecurrentCell.Gru)
            .Add("HiddenSize", 64, 128)
            .Add("Bidirectional", false, true)
            .Add("Dropout", 0.3, 0.1),
        Build = (c, s) => OnTokens(c, t => t.Context.Deep().Lstm(s.Configure(t, new LstmTrainer.Options
        {
            Cell = s.Parameters.Get("Cell", RecurrentCell.Lstm),
            HiddenSize = s.Parameters.Get("HiddenSize", 64),
            Bidirectional = s.Parameters.Get("Bidirectional", false),
            Dropout = s.Parameters.Get("Dropout", 0.3),
        }))),
    };

    /// <summary>Transformer encoder on token sequences (every task): a key-vector feature column, or the raw text column tokenized by the candidate.</summary>
    public static CandidateFactory Transformer { get; } = new()
    {
        Name = "Transformer",
        Kind = CandidateKind.Deep,
        Tasks = AllTasks,
        Inputs = CandidateInputs.Tokens,
        TokenizesText = true,
        MaxEpochs = 8,
        SearchSpace = new SearchSpace()
            .Add("Layers", 2, 1)
            .Add("Dimension", 64, 128)
            .Add("LearningRate", 2e-3, 1e-3)
            .Add("Dropout", 0.1, 0.2),
        Build = (c, s) => OnTokens(c, t => t.Context.Deep().Transformer(s.Configure(t, new TransformerTrainer.Options
        {
            Layers = s.Parameters.Get("Layers", 2),
            Dimension = s.Parameters.Get("Dimension", 64),
            LearningRate = s.Parameters.Get("LearningRate", 2e-3),
            Dropout = s.Parameters.Get("Dropout", 0.1),
        }))),
    };

    /// <summary>The column a sequence candidate's raw text becomes token ids in (part of its model, so it reads the text).</summary>
    public const string TextTokensColumnName = "TextTokens";

    // A sequence family's input: the feature column when it holds token ids; else the raw text column, normalized (lower
    // case, no punctuation), split into words and mapped to ids (at most 20,000 words, the rest unknown) in front of the
    // trainer — this candidate's own featurization, while the others read the featurized vector.
    private static IEstimator<ITransformer> OnTokens(CandidateContext c, Func<CandidateContext, IEstimator<ITransformer>> trainer)
    {
        if (c.VocabularySize > 0 || c.TextColumnName is not { } text) return trainer(c);
        var t = c.Context.Transforms;
        return t.Text.NormalizeText(TextTokensColumnName, text, keepPunctuations: false)
            .Append(t.Text.TokenizeIntoWords(TextTokensColumnName))
            .Append(t.Conversion.MapValueToKey(TextTokensColumnName, maximumNumberOfKeys: 20_000))
            .Append(trainer(c with { FeatureColumnName = TextTokensColumnName }));
    }
}
