namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>The ML.NET evaluator metrics a leaderboard reports, by task, and which way is better.</summary>
public static class Metrics
{
    /// <summary>Binary: accuracy.</summary>
    public const string Accuracy = "Accuracy";
    /// <summary>Binary: area under the ROC curve.</summary>
    public const string Auc = "AUC";
    /// <summary>Binary: F1 score of the positive class.</summary>
    public const string F1 = "F1";
    /// <summary>Binary and multiclass: log-loss.</summary>
    public const string LogLoss = "LogLoss";
    /// <summary>Multiclass: micro-averaged accuracy.</summary>
    public const string MicroAccuracy = "MicroAccuracy";
    /// <summary>Multiclass: macro-averaged accuracy.</summary>
    public const string MacroAccuracy = "MacroAccuracy";
    /// <summary>Regression: root mean squared error.</summary>
    public const string Rmse = "RMSE";
    /// <summary>Regression: mean absolute error.</summary>
    public const string Mae = "MAE";
    /// <summary>Regression: coefficient of determination.</summary>
    public const string RSquared = "RSquared";

    /// <summary>The metrics of <paramref name="task"/>, in report order.</summary>
    public static IReadOnlyList<string> For(DeepTask task) => task switch
    {
        DeepTask.BinaryClassification => [Accuracy, Auc, F1, LogLoss],
        DeepTask.MulticlassClassification => [MicroAccuracy, MacroAccuracy, LogLoss],
        DeepTask.Regression => [Rmse, Mae, RSquared],
        _ => throw new ArgumentException($"No metrics for task {task}.", nameof(task)),
    };

    /// <summary>The default ranking metric of <paramref name="task"/>.</summary>
    public static string Default(DeepTask task) => For(task)[task == DeepTask.Regression ? 2 : 0];

    /// <summary>Whether a larger value of <paramref name="metric"/> is better.</summary>
    public static bool HigherIsBetter(string metric) => metric is not (LogLoss or Rmse or Mae);

    /// <summary>Evaluates scored data with ML.NET's evaluator for <paramref name="task"/>.</summary>
    public static Dictionary<string, double> Evaluate(MLContext ml, IDataView scored, DeepTask task, string label)
    {
        switch (task)
        {
            case DeepTask.BinaryClassification:
                if (scored.Schema.GetColumnOrNull("Probability") is null)
                {
                    var n = ml.BinaryClassification.EvaluateNonCalibrated(scored, label);
                    return new() { [Accuracy] = n.Accuracy, [Auc] = n.AreaUnderRocCurve, [F1] = n.F1Score, [LogLoss] = double.NaN };
                }
                var b = ml.BinaryClassification.Evaluate(scored, label);
                return new() { [Accuracy] = b.Accuracy, [Auc] = b.AreaUnderRocCurve, [F1] = b.F1Score, [LogLoss] = b.LogLoss };
            case DeepTask.MulticlassClassification:
                var m = ml.MulticlassClassification.Evaluate(scored, label);
                return new() { [MicroAccuracy] = m.MicroAccuracy, [MacroAccuracy] = m.MacroAccuracy, [LogLoss] = m.LogLoss };
            default:
                var r = ml.Regression.Evaluate(scored, label);
                return new() { [Rmse] = r.RootMeanSquaredError, [Mae] = r.MeanAbsoluteError, [RSquared] = r.RSquared };
        }
    }
}
