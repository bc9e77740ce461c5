using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.TorchSharp;

namespace Microsoft.ML.DeepExtensions.NasBert.Tests;

/// <summary>
/// ML.NET's pretrained NAS-BERT text classifier (<c>mlContext.MulticlassClassification.Trainers.TextClassification</c>
/// from Microsoft.ML.TorchSharp) as a comparison candidate for <see cref="TransformerTrainer"/>. Fit downloads the
/// pretrained encoder from ML.NET's model store; when that is impossible (offline) the candidate is skipped with the
/// reason, instead of failing the comparison.
/// </summary>
public static class NasBertCandidate
{
    /// <summary>The outcome: a fitted model, or why there is none.</summary>
    /// <param name="Model">The fitted chain (null when skipped).</param>
    /// <param name="SkipReason">Why the candidate was skipped (null when fitted).</param>
    public sealed record Result(ITransformer Model, string SkipReason)
    {
        /// <summary>True when NAS-BERT could not be trained here.</summary>
        public bool Skipped => Model is null;
    }

    /// <summary>
    /// The NAS-BERT pipeline on a text column and a string label column: label → key, TextClassification, key → value.
    /// Constructing it needs no weights.
    /// </summary>
    public static IEstimator<ITransformer> Pipeline(MLContext ml, string labelColumn, string textColumn, int epochs = 1, int batchSize = 32) =>
        ml.Transforms.Conversion.MapValueToKey("Label", labelColumn)
            .Append(ml.MulticlassClassification.Trainers.TextClassification(labelColumnName: "Label", sentence1ColumnName: textColumn,
                maxEpochs: epochs, batchSize: batchSize))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

    /// <summary>Tries to fit NAS-BERT on <paramref name="train"/>; returns the skip reason when its weights cannot be downloaded.</summary>
    public static Result TryFit(MLContext ml, IDataView train, string labelColumn, string textColumn, int epochs = 1)
    {
        try
        {
            return new Result(Pipeline(ml, labelColumn, textColumn, epochs).Fit(train), null);
        }
        catch (Exception e) when (IsDownloadFailure(e))
        {
            return new Result(null,
                "NAS-BERT skipped: its pretrained weights could not be downloaded from ML.NET's model store " +
                $"(no internet access here?) — {Innermost(e).GetType().Name}: {Innermost(e).Message}");
        }
    }

    private static bool IsDownloadFailure(Exception e)
    {
        for (var x = e; x != null; x = x.InnerException)
            if (x is System.Net.Http.HttpRequestException or System.Net.Sockets.SocketException or TimeoutException or TaskCanceledException
                || x.Message.Contains("could not be downloaded", StringComparison.OrdinalIgnoreCase)
                || x.Message.Contains("download", StringComparison.OrdinalIgnoreCase))
                return true;
        return false;
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException != null) e = e.InnerException;
        return e;
    }
}
