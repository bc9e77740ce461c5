namespace Microsoft.ML.DeepExtensions;

/// <summary>The pretrained networks on <c>mlContext.Deep()</c>: fine-tuning trainers and featurizers for classic trainers.</summary>
public static class PretrainedCatalog
{
    /// <summary>
    /// Fine-tunes ImageNet's ResNet18 on an image column (an MLImage column or pixels with <paramref name="imageShape"/>):
    /// 8 epochs, the first with the backbone frozen, then all layers with the backbone at a tenth of the rate.
    /// </summary>
    /// <param name="catalog">The deep catalog.</param>
    /// <param name="labelColumnName">The label column.</param>
    /// <param name="featureColumnName">The image column.</param>
    /// <param name="imageShape">Channels × height × width of a pixel vector; null infers a square grayscale or RGB image.</param>
    /// <param name="pixelMaximum">The value of a white pixel: 255 (ExtractPixels' default) or 1 for pixels scaled to 0–1; null decides from the data.</param>
    /// <param name="epochs">Training epochs.</param>
    public static PretrainedCnnTrainer ResNet18(this DeepCatalog catalog, string labelColumnName = ColumnNames.Label, string featureColumnName = ColumnNames.Features,
        ImageShape? imageShape = null, float? pixelMaximum = null, int epochs = 8) =>
        catalog.PretrainedCnn(new PretrainedCnnTrainer.Options
        {
            Model = PretrainedModels.ResNet18, LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName,
            ImageShape = imageShape, PixelMaximum = pixelMaximum, Epochs = epochs,
        });

    /// <summary>Fine-tunes all-MiniLM-L6-v2 on a raw text column (WordPiece tokenization included).</summary>
    /// <param name="catalog">The deep catalog.</param>
    /// <param name="labelColumnName">The label column.</param>
    /// <param name="textColumnName">The text column.</param>
    /// <param name="epochs">Training epochs.</param>
    /// <param name="maxTokens">Word pieces read per text; longer texts are truncated.</param>
    public static PretrainedTransformerTrainer MiniLm(this DeepCatalog catalog, string labelColumnName = ColumnNames.Label, string textColumnName = "Text",
        int epochs = 3, int maxTokens = 128) =>
        catalog.PretrainedTransformer(new PretrainedTransformerTrainer.Options
        {
            Model = PretrainedModels.MiniLmL6, LabelColumnName = labelColumnName, FeatureColumnName = textColumnName, Epochs = epochs, MaxTokens = maxTokens,
        });

    /// <summary>all-MiniLM-L6-v2 sentence embeddings (384 values) of a text column, as a featurizer for classic trainers.</summary>
    /// <param name="catalog">The deep catalog.</param>
    /// <param name="outputColumnName">The embedding column to add.</param>
    /// <param name="inputColumnName">The text column.</param>
    /// <param name="maxTokens">Word pieces read per text.</param>
    public static PretrainedEmbeddingEstimator TextEmbeddings(this DeepCatalog catalog, string outputColumnName = "Embedding", string inputColumnName = "Text", int maxTokens = 128) =>
        PretrainedEmbeddingEstimator.Text(catalog.Context, PretrainedModels.MiniLmL6, outputColumnName, inputColumnName, maxTokens);

    /// <summary>ResNet18's 512 pooled ImageNet features of an image column, as a featurizer for classic trainers.</summary>
    /// <param name="catalog">The deep catalog.</param>
    /// <param name="outputColumnName">The feature column to add.</param>
    /// <param name="inputColumnName">The image column (MLImage or pixels).</param>
    /// <param name="imageShape">Channels × height × width of a pixel vector; null infers a square grayscale or RGB image.</param>
    /// <param name="pixelMaximum">The value of a white pixel: 255 or 1; null decides from the data.</param>
    /// <param name="resolution">The square size images are resized to.</param>
    public static PretrainedEmbeddingEstimator ImageEmbeddings(this DeepCatalog catalog, string outputColumnName = "ImageEmbedding", string inputColumnName = ColumnNames.Features,
        ImageShape? imageShape = null, float? pixelMaximum = null, int resolution = 224) =>
        PretrainedEmbeddingEstimator.Image(catalog.Context, PretrainedModels.ResNet18, outputColumnName, inputColumnName, imageShape, pixelMaximum, resolution);
}
