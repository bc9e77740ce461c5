using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// A markdown report of models fitted on one split: each row is a pipeline's two metrics, its Fit seconds and the deep
/// model's seconds per epoch. Shared by the benchmarks that compare whole pipelines (pretrained, vision).
/// </summary>
internal sealed class ModelTable
{
    public StringBuilder Report { get; } = new();

    /// <summary>The machine line every report starts with.</summary>
    public static string Machine()
    {
        var info = MachineInfo.Collect();
        return $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {info.Cpu}, {info.Cores} cores; .NET {info.Runtime}; TorchSharp {info.TorchSharp}, libtorch {info.LibTorch}; load before: {MachineInfo.LoadAverage()}.";
    }

    /// <summary>A multiclass row: micro- and macro-accuracy.</summary>
    public void Row(MLContext ml, string name, IDataView train, IDataView test, IEstimator<ITransformer> pipeline) =>
        Row(name, train, test, pipeline, scored => ml.MulticlassClassification.Evaluate(scored) is var m ? (m.MicroAccuracy, m.MacroAccuracy) : default);

    /// <summary>A binary row: accuracy and AUC.</summary>
    public void BinaryRow(MLContext ml, string name, IDataView train, IDataView test, IEstimator<ITransformer> pipeline) =>
        Row(name, train, test, pipeline, scored => ml.BinaryClassification.Evaluate(scored) is var m ? (m.Accuracy, m.AreaUnderRocCurve) : default);

    /// <summary>Fits <paramref name="pipeline"/>, scores the test rows and appends one table row: two metrics, Fit seconds, seconds per epoch.</summary>
    private void Row(string name, IDataView train, IDataView test, IEstimator<ITransformer> pipeline, Func<IDataView, (double, double)> evaluate)
    {
        Console.WriteLine($"[{DateTime.Now:HH:mm:ss}] {name} ...");
        var watch = Stopwatch.StartNew();
        var model = pipeline.Fit(train);
        double seconds = watch.Elapsed.TotalSeconds;
        var (first, second) = evaluate(model.Transform(test));
        string line = $"| {name} | {first:F4} | {second:F4} | {seconds:F0} | {PerEpoch(model)} |";
        Console.WriteLine(line);
        Report.AppendLine(line);
        (model as IDisposable)?.Dispose();
    }

    /// <summary>The deep model's seconds per epoch ("–" for a classic pipeline).</summary>
    private static string PerEpoch(ITransformer model) =>
        ((model as IEnumerable<ITransformer>)?.OfType<DeepTransformer>().LastOrDefault(d => d.History.Epochs.Count > 0) ?? model as DeepTransformer) is { History.Epochs.Count: > 0 } d
        ? string.Join(" / ", d.History.Epochs.Select(e => e.Seconds.ToString("F1", CultureInfo.InvariantCulture)))
        : "–";

    /// <summary>Prints the report and writes it to <paramref name="output"/> unless that is "-".</summary>
    public void Write(string output)
    {
        Console.WriteLine(Report);
        if (output == "-") return;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
        File.WriteAllText(output, Report.ToString());
        Console.WriteLine($"Report written to {output}");
    }
}
