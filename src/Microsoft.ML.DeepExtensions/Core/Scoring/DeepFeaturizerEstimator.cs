using Microsoft.ML.DeepExtensions.Persistence;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Trains a deep network with a deep trainer, then keeps only its feature extractor: the fitted transformer adds the
/// network's penultimate layer as a float vector column, so a classic ML.NET trainer can follow in the same pipeline
/// (for example <c>ml.Deep().CnnFeaturizer(...).Append(ml.MulticlassClassification.Trainers.LightGbm("Label", "CnnFeatures"))</c>).
/// </summary>
public sealed class DeepFeaturizerEstimator : IEstimator<DeepTransformer>
{
    private readonly IEstimator<DeepTransformer> _trainer;
    private readonly string _outputColumnName;

    /// <summary>Wraps <paramref name="trainer"/>; the output column is <paramref name="outputColumnName"/>.</summary>
    public DeepFeaturizerEstimator(IEstimator<DeepTransformer> trainer, string outputColumnName)
    {
        _trainer = trainer ?? throw new ArgumentNullException(nameof(trainer));
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        _outputColumnName = outputColumnName;
    }

    /// <summary>Trains the network and returns its featurizer.</summary>
    public DeepTransformer Fit(IDataView input)
    {
        using var model = _trainer.Fit(input);
        return model.Featurizer(_outputColumnName);
    }

    /// <summary>The input columns plus the feature vector (its size is known once the network is built).</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        _trainer.GetOutputSchema(inputSchema);   // validates the trainer's input columns
        var cols = inputSchema.ToDictionary(c => c.Name);
        cols[_outputColumnName] = MlNetBridge.ShapeColumn(_outputColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        return new SchemaShape(cols.Values);
    }
}
