using Microsoft.ML.Data;

namespace QuickStart;

/// <summary>What the model reads: one 28×28 grayscale image, 784 pixels scaled to [0, 1], row by row.</summary>
public sealed class FashionImage
{
    [VectorType(784)]
    public float[] Features { get; set; } = new float[784];
}

/// <summary>What the model returns: one probability per clothing class (the class names are the Score column's slot names).</summary>
public sealed class FashionPrediction
{
    public float[] Score { get; set; } = [];
}
