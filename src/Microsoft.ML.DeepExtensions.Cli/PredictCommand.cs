using System.CommandLine;
using System.Globalization;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.AutoML;

namespace Microsoft.ML.DeepExtensions.Cli;

/// <summary>
/// `deepext predict`: scores a CSV/TSV file with a saved model (e.g. the comparison's best-model.zip) and writes one row
/// per input row: the predicted label (as the label's own values), then the score(s) and, for binary tasks, the probability.
/// </summary>
internal static class PredictCommand
{
    private static readonly Option<string> ModelOption = new("--model") { Description = "A saved model (.zip), e.g. compare-output/best-model.zip.", HelpName = "FILE", Required = true };
    private static readonly Option<string> DatasetOption = new("--dataset") { Description = "CSV or TSV file with the model's input columns (by name; the label may be absent).", HelpName = "FILE", Required = true };
    private static readonly Option<string> OutputOption = new("--output") { Description = "Where the predictions go (CSV).", HelpName = "FILE", DefaultValueFactory = _ => "predictions.csv" };

    public static System.CommandLine.Command Create()
    {
        var command = new System.CommandLine.Command("predict", "Score a CSV/TSV file with a saved model and write the predictions as CSV.") { ModelOption, DatasetOption, OutputOption };
        command.SetAction(parse => Cli.Guard("predict", () => Run(parse.GetValue(ModelOption)!, parse.GetValue(DatasetOption)!, parse.GetValue(OutputOption)!)));
        return command;
    }

    private static int Run(string modelPath, string dataPath, string output)
    {
        var ml = new MLContext(1);
        var model = ml.Deep().LoadModel(modelPath, out var inputSchema);
        var data = TabularData.LoadFor(ml, dataPath, inputSchema, out var missing);
        if (missing.Count > 0) Console.Error.WriteLine($"predict: not in {Path.GetFileName(dataPath)}, read as missing: {string.Join(", ", missing)} (expected for the label).");
        var scored = model.Transform(data);
        int rows = Write(scored, output);
        Console.WriteLine($"Wrote {rows:N0} predictions to {Path.GetFullPath(output)}");
        return 0;
    }

    /// <summary>Writes PredictedLabel, Score and Probability (whichever the model produces); returns the row count.</summary>
    internal static int Write(IDataView scored, string path)
    {
        var columns = new[] { "PredictedLabel", "Score", "Probability" }
            .Select(n => scored.Schema.GetColumnOrNull(n)).OfType<DataViewSchema.Column>().ToList();
        if (columns.Count == 0)
            throw new InvalidOperationException($"The model produces none of PredictedLabel, Score, Probability; its columns are {string.Join(", ", scored.Schema.Select(c => c.Name))}.");
        var writers = columns.Select(c => Cell(c)).ToList();
        var header = columns.Zip(writers, (c, w) => w.Header(c.Name));
        using var file = new StreamWriter(path, false, new UTF8Encoding(false));
        file.WriteLine(string.Join(",", header.SelectMany(h => h).Select(Quote)));
        using var cursor = scored.GetRowCursor(columns);
        var getters = writers.Select(w => w.Bind(cursor)).ToList();
        int rows = 0;
        while (cursor.MoveNext())
        {
            file.WriteLine(string.Join(",", getters.SelectMany(g => g()).Select(Quote)));
            rows++;
        }
        return rows;
    }

    private static string Quote(string s) => s.IndexOfAny([',', '"', '\n']) < 0 ? s : $"\"{s.Replace("\"", "\"\"")}\"";

    private static string Number(float v) => v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>How one output column becomes CSV cells: a key as its value, a vector as one cell per slot.</summary>
    private sealed record CellWriter(Func<string, string[]> Header, Func<DataViewRowCursor, Func<string[]>> Bind);

    private static CellWriter Cell(DataViewSchema.Column c)
    {
        switch (c.Type)
        {
            case KeyDataViewType:
                var values = default(VBuffer<ReadOnlyMemory<char>>);
                if (c.HasKeyValues()) c.GetKeyValues(ref values);
                var names = values.DenseValues().Select(v => v.ToString()).ToArray();
                return new CellWriter(n => [n], cursor =>
                {
                    var get = cursor.GetGetter<uint>(c);
                    uint key = 0;
                    return () => { get(ref key); return [key == 0 || key > names.Length ? "" : names[key - 1]]; };
                });
            case VectorDataViewType { ItemType: NumberDataViewType } v when v.ItemType.RawType == typeof(float):
                var slots = default(VBuffer<ReadOnlyMemory<char>>);
                if (c.HasSlotNames()) c.GetSlotNames(ref slots);
                string[] slotNames = slots.Length == v.Size
                    ? slots.DenseValues().Select(s => s.ToString()).ToArray()
                    : Enumerable.Range(0, v.Size).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
                return new CellWriter(n => slotNames.Select(s => $"{n}.{s}").ToArray(), cursor =>
                {
                    var get = cursor.GetGetter<VBuffer<float>>(c);
                    var buffer = default(VBuffer<float>);
                    return () => { get(ref buffer); return buffer.DenseValues().Select(Number).ToArray(); };
                });
            case BooleanDataViewType:
                return new CellWriter(n => [n], cursor =>
                {
                    var get = cursor.GetGetter<bool>(c);
                    bool b = false;
                    return () => { get(ref b); return [b ? "true" : "false"]; };
                });
            case NumberDataViewType when c.Type.RawType == typeof(float):
                return new CellWriter(n => [n], cursor =>
                {
                    var get = cursor.GetGetter<float>(c);
                    float f = 0;
                    return () => { get(ref f); return [Number(f)]; };
                });
            default:
                throw new InvalidOperationException($"Output column '{c.Name}' is {c.Type}, which predict cannot write.");
        }
    }
}
