namespace Microsoft.ML.DeepExtensions;

/// <summary>The prediction task a deep trainer solves. <see cref="Auto"/> infers it from the label column's type.</summary>
public enum DeepTask
{
    /// <summary>Infer from the label type: Boolean → binary, Key → multiclass, Single/Double → regression.</summary>
    Auto,
    /// <summary>Two classes; outputs <c>Score</c> (logit), <c>Probability</c> and <c>PredictedLabel</c> (Boolean).</summary>
    BinaryClassification,
    /// <summary>K classes; outputs <c>Score</c> (softmax vector) and <c>PredictedLabel</c> (Key).</summary>
    MulticlassClassification,
    /// <summary>A real-valued target; outputs <c>Score</c>.</summary>
    Regression,
}

/// <summary>Optimizers available to gradient-trained networks.</summary>
public enum DeepOptimizer
{
    /// <summary>Stochastic gradient descent with (optional) momentum.</summary>
    Sgd,
    /// <summary>Adam (Kingma &amp; Ba, 2015).</summary>
    Adam,
    /// <summary>Adam with decoupled weight decay (Loshchilov &amp; Hutter, 2019).</summary>
    AdamW,
    /// <summary>RMSprop.</summary>
    RmsProp,
}

/// <summary>Loss functions. <see cref="Auto"/> picks cross-entropy, BCE-with-logits or MSE from the task.</summary>
public enum DeepLoss
{
    /// <summary>Cross-entropy (multiclass), BCE-with-logits (binary), mean squared error (regression).</summary>
    Auto,
    /// <summary>Softmax cross-entropy (multiclass).</summary>
    CrossEntropy,
    /// <summary>Binary cross-entropy on logits (binary).</summary>
    BinaryCrossEntropy,
    /// <summary>Mean squared error (regression).</summary>
    MeanSquaredError,
    /// <summary>Huber / smooth-L1 loss (regression, robust to outliers).</summary>
    Huber,
}
