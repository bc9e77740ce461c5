namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>
/// Pretrained networks as comparison candidates: a fine-tuned image backbone (on pixels with an
/// <see cref="ComparisonOptions.ImageShape"/>), a fine-tuned text encoder and its frozen embeddings under SDCA (on the raw
/// <see cref="ComparisonOptions.TextColumnName"/>). They take the network's files as a <see cref="PretrainedModel"/>, so
/// the comparison itself does not carry weights: register them with <c>PretrainedModels.ResNet18</c> /
/// <c>PretrainedModels.MiniLmL6</c> from the <c>Microsoft.ML.DeepExtensions.Pretrained</c> package (the CLI does).
/// </summary>
public static class PretrainedCandidates
{
    private static readonly DeepTask[] AllTasks = [DeepTask.BinaryClassification, DeepTask.MulticlassClassification, DeepTask.Regression];

    /// <summary>The candidates for <paramref name="image"/> and <paramref name="text"/> (either may be null): each fine-tuned, and its frozen embeddings under SDCA.</summary>
    public static IReadOnlyList<CandidateFactory> For(PretrainedModel? image, PretrainedModel? text) =>
        [.. image is null ? [] : new[] { FineTunedCnn(image), ImageEmbeddingsSdca(image) }, .. text is null ? [] : new[] { FineTunedTextEncoder(text), TextEmbeddingsSdca(text) }];

    /// <summary>A pretrained ResNet fine-tuned on the image features (every task).</summary>
    public static CandidateFactory FineTunedCnn(PretrainedModel model) => new()
    {
        Name = $"{model.Name} (fine-tuned)",
        Kind = CandidateKind.Deep,
        Tasks = AllTasks,
        Inputs = CandidateInputs.Image,
        MaxEpochs = 8,
        SearchSpace = new SearchSpace()
            .Add("Resolution", 64, 112)
            .Add("LearningRate", 3e-3, 1e-3),
        Build = (c, s) => c.Context.Deep().PretrainedCnn(s.Configure(c, new PretrainedCnnTrainer.Options
        {
            Model = model,
            ImageShape = c.ImageShape,
            Resolution = s.Parameters.Get("Resolution", 64),
            LearningRate = s.Parameters.Get("LearningRate", 3e-3),
            ValidationFraction = 0.1,
        })),
    };

    /// <summary>A pretrained text encoder fine-tuned on the raw text (every task).</summary>
    public static CandidateFactory FineTunedTextEncoder(PretrainedModel model) => new()
    {
        Name = $"{model.Name} (fine-tuned)",
        Kind = CandidateKind.Deep,
        Tasks = AllTasks,
        Inputs = CandidateInputs.Text,
        MaxEpochs = 3,
        SearchSpace = new SearchSpace()
            .Add("MaxTokens", 128, 64)
            .Add("TrainableLayers", 6, 2),
        Build = (c, s) =>
        {
            var options = s.Configure(c, new PretrainedTransformerTrainer.Options
            {
                Model = model,
                MaxTokens = s.Parameters.Get("MaxTokens", 128),
                TrainableLayers = s.Parameters.Get("TrainableLayers", 6),
                ValidationFraction = 0.1,
            });
            options.FeatureColumnName = c.TextColumnName!;
            return c.Context.Deep().PretrainedTransformer(options);
        },
    };

    /// <summary>
    /// The network's frozen pooled features of the image features under SDCA (<see cref="ClassicCandidates.Sdca"/>), at
    /// 64 × 64 pixels (ImageNet's 224 costs 12× the time for each image on a CPU).
    /// </summary>
    public static CandidateFactory ImageEmbeddingsSdca(PretrainedModel model) => EmbeddingsSdca(model, CandidateInputs.Image, ("Resolution", 64),
        c => PretrainedEmbeddingEstimator.Image(c.Context, model, "PretrainedEmbedding", c.FeatureColumnName, c.ImageShape, resolution: 64));

    /// <summary>The encoder's frozen sentence embeddings of the raw text under SDCA (<see cref="ClassicCandidates.Sdca"/>).</summary>
    public static CandidateFactory TextEmbeddingsSdca(PretrainedModel model) => EmbeddingsSdca(model, CandidateInputs.Text, ("MaxTokens", 128),
        c => PretrainedEmbeddingEstimator.Text(c.Context, model, "PretrainedEmbedding", c.TextColumnName!));

    // SDCA over a frozen network's embeddings, cached once (SDCA passes over them many times).
    private static CandidateFactory EmbeddingsSdca(PretrainedModel model, CandidateInputs inputs, (string Name, object Value) setting,
        Func<CandidateContext, IEstimator<ITransformer>> embed) => new()
    {
        Name = $"{model.Name} embeddings + SDCA",
        Kind = CandidateKind.Classic,
        Tasks = AllTasks,
        Inputs = inputs,
        FixedParameters = new HyperParameters(ClassicCandidates.Sdca.FixedParameters!) { [setting.Name] = setting.Value },
        Build = (c, s) => embed(c)
            .AppendCacheCheckpoint(c.Context)
            .Append(ClassicCandidates.Sdca.Build(c with { FeatureColumnName = "PretrainedEmbedding" }, s)),
    };
}
