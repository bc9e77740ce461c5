using System.CommandLine;

namespace Microsoft.ML.DeepExtensions.Cli;

/// <summary>`deepext doctor`: the runtime, and with --model the versions and integrity of every deep model inside a saved chain.</summary>
internal static class DoctorCommand
{
    private static readonly Option<string?> ModelOption = new("--model") { Description = "A saved model (.zip): list its input columns and check each deep model's versions and SHA-256.", HelpName = "FILE" };

    public static System.CommandLine.Command Create()
    {
        var command = new System.CommandLine.Command("doctor", "TorchSharp/libtorch versions, the native library and the device; with --model, a saved model's check.") { ModelOption };
        command.SetAction(parse => Cli.Guard("doctor", () => Run(parse.GetValue(ModelOption))));
        return command;
    }

    private static int Run(string? path)
    {
        Console.WriteLine(DeepRuntime.Describe());
        if (path is null) return 0;
        var model = new MLContext().Deep().LoadModel(path, out var schema);
        Console.WriteLine($"Model file {path}: input {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"{c.Name} {c.Type}"))}");
        var parts = model is IEnumerable<ITransformer> chain ? chain.ToList() : [model];
        foreach (var part in parts)
            Console.WriteLine(part switch
            {
                DeepTransformer d => $"  {d}: {d.Versions}",
                GanTransformer g => $"  {g}: {g.Versions}",
                _ => $"  {part.GetType().Name}",
            });
        return 0;
    }
}
