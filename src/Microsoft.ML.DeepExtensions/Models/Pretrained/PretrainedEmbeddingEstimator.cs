using Microsoft.ML.DeepExtensions.Persistence;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// A pretrained network as an ordinary ML.NET featurizer: adds its embedding of a text or image column as a float vector
/// column, so LightGBM, SDCA or any classic trainer can learn on it in the same pipeline. Nothing is trained: Fit reads
/// the network's weights (and vocabulary) once and returns a <see cref="DeepTransformer"/> that saves, loads and scores
/// like any other (without the pretrained package). Text: the mean-pooled sentence embedding of the encoder (384 values
/// for all-MiniLM-L6-v2). Images: ResNet18's 512 pooled features. Create it with <c>mlContext.Deep().TextEmbeddings(...)</c>
/// or <c>mlContext.Deep().ImageEmbeddings(...)</c> from the <c>Microsoft.ML.DeepExtensions.Pretrained</c> package.
/// </summary>
public sealed class PretrainedEmbeddingEstimator : IEstimator<DeepTransformer>
{
    private readonly Func<IDataView, DeepTransformer> _fit;
    private readonly Func<SchemaShape.Column, bool> _reads;
    private readonly string _inputColumnName, _outputColumnName, _expects;

    private PretrainedEmbeddingEstimator(string outputColumnName, string inputColumnName, Func<IDataView, DeepTransformer> fit,
        Func<SchemaShape.Column, bool> reads, string expects)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        ArgumentException.ThrowIfNullOrWhiteSpace(inputColumnName);
        (_outputColumnName, _inputColumnName, _fit, _reads, _expects) = (outputColumnName, inputColumnName, fit, reads, expects);
    }

    /// <summary>Sentence embeddings of the Text column <paramref name="inputColumnName"/> from a pretrained BERT-layout encoder.</summary>
    /// <param name="context">The ML.NET context.</param>
    /// <param name="model">The encoder (e.g. <c>PretrainedModels.MiniLmL6</c>).</param>
    /// <param name="outputColumnName">The embedding column to add.</param>
    /// <param name="inputColumnName">The raw text column.</param>
    /// <param name="maxTokens">Word pieces read per text ([CLS] and [SEP] included).</param>
    public static PretrainedEmbeddingEstimator Text(MLContext context, PretrainedModel model, string outputColumnName, string inputColumnName, int maxTokens = 128)
    {
        var trainer = new PretrainedTransformerTrainer(context, new PretrainedTransformerTrainer.Options
        {
            Model = model, FeatureColumnName = inputColumnName, LabelColumnName = inputColumnName, MaxTokens = maxTokens,
        });
        return new(outputColumnName, inputColumnName, data => trainer.Untrained(data.Schema, outputColumnName), WordPieceInput.Reads, "a Text column");
    }

    /// <summary>Pooled ResNet features of the image column <paramref name="inputColumnName"/> (an MLImage column or a pixel vector).</summary>
    /// <param name="context">The ML.NET context.</param>
    /// <param name="model">The backbone (e.g. <c>PretrainedModels.ResNet18</c>).</param>
    /// <param name="outputColumnName">The feature column to add.</param>
    /// <param name="inputColumnName">The image column.</param>
    /// <param name="imageShape">Channels × height × width of a pixel vector; null infers a square grayscale or RGB image.</param>
    /// <param name="pixelMaximum">
    /// The value of a white pixel: 255 (ExtractPixels' default) or 1 for scaled pixels; null (the default) decides at Fit:
    /// 1 when no pixel of the data exceeds 1, else 255 (an MLImage column is always 0–255).
    /// </param>
    /// <param name="resolution">The square size images are resized to (ImageNet's 224 by default).</param>
    public static PretrainedEmbeddingEstimator Image(MLContext context, PretrainedModel model, string outputColumnName, string inputColumnName,
        ImageShape? imageShape = null, float? pixelMaximum = null, int resolution = 224)
    {
        var options = new PretrainedCnnTrainer.Options
        {
            Model = model, FeatureColumnName = inputColumnName, LabelColumnName = inputColumnName, ImageShape = imageShape,
            PixelMaximum = pixelMaximum, Resolution = resolution,
        };
        var trainer = new PretrainedCnnTrainer(context, options);
        return new(outputColumnName, inputColumnName, data =>
        {
            if (pixelMaximum is null) options.PixelMaximum = LargestPixel(data, inputColumnName) <= 1f ? 1f : 255f;
            return trainer.Untrained(data.Schema, outputColumnName);
        }, ImageInput.Reads, ImageInput.Expected);
    }

    /// <summary>The largest value of a pixel-vector column (255 for an MLImage column, which decodes to bytes).</summary>
    private static float LargestPixel(IDataView data, string column)
    {
        var col = data.Schema.GetColumnOrNull(column);
        if (col?.Type is not VectorDataViewType { ItemType: NumberDataViewType } || col.Value.Type.RawType != typeof(VBuffer<float>)) return 255f;
        float max = float.NegativeInfinity;
        using var cursor = data.GetRowCursor([col.Value]);
        var getter = cursor.GetGetter<VBuffer<float>>(col.Value);
        VBuffer<float> row = default;
        while (cursor.MoveNext())
        {
            getter(ref row);
            foreach (float v in row.GetValues()) if (v > max) max = v;
        }
        return max;
    }

    /// <summary>Reads the pretrained weights and returns the featurizer (nothing is trained).</summary>
    public DeepTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return _fit(input);
    }

    /// <summary>The input columns plus the embedding vector.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var column = inputSchema.FirstOrDefault(c => c.Name == _inputColumnName);
        if (column.Name is null)
            throw new ArgumentException($"Input column '{_inputColumnName}' was not found; the featurizer reads {_expects}.", _inputColumnName);
        if (!_reads(column))
            throw new ArgumentException($"Input column '{_inputColumnName}' is {column.ItemType}; the featurizer reads {_expects}.", _inputColumnName);
        var cols = inputSchema.ToDictionary(c => c.Name);
        cols[_outputColumnName] = MlNetBridge.ShapeColumn(_outputColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(cols.Values);
    }
}
