namespace Microsoft.ML.DeepExtensions;

/// <summary>ML.NET's standard column names (its own <c>DefaultColumnNames</c> is internal).</summary>
public static class ColumnNames
{
    /// <summary>"Label".</summary>
    public const string Label = "Label";
    /// <summary>"Features".</summary>
    public const string Features = "Features";
    /// <summary>"Score".</summary>
    public const string Score = "Score";
    /// <summary>"Probability".</summary>
    public const string Probability = "Probability";
    /// <summary>"PredictedLabel".</summary>
    public const string PredictedLabel = "PredictedLabel";
}
