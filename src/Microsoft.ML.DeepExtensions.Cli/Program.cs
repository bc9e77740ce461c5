// deepext — the command line of Microsoft.ML.DeepExtensions.
//
//   dotnet run -c Release --project src/Microsoft.ML.DeepExtensions.Cli -- compare
//       CNN and MLP against LightGBM and SDCA on the embedded Fashion-MNIST 10k split (80 % train / 20 % validation)
//   dotnet run -c Release --project src/Microsoft.ML.DeepExtensions.Cli -- compare --dataset adult.csv --label "label(IsOver50K)" --time 120
//   ... compare --help
using Microsoft.ML;
using Microsoft.ML.DeepExtensions;
using Microsoft.ML.DeepExtensions.Cli;

return args.FirstOrDefault() switch
{
    "compare" => CompareCommand.Run(args[1..]),
    "doctor" or "--doctor" => Doctor(args[1..]),
    _ => Usage(),
};

// The runtime, and with --model the versions and integrity of every deep model inside a saved chain.
static int Doctor(string[] args)
{
    Console.WriteLine(DeepRuntime.Describe());
    if (args is not ["--model", var path]) return args.Length == 0 ? 0 : Usage();
    try
    {
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
    catch (Exception e) when (e is ModelFileException or FileNotFoundException)
    {
        Console.Error.WriteLine(e.Message);
        return 2;
    }
}

static int Usage()
{
    Console.Error.WriteLine("""
        usage: deepext compare [options]     deep vs classic ML.NET trainers: leaderboard, CSV/JSON/HTML report, best model
               deepext doctor [--model F]    TorchSharp/libtorch versions, native library, device; with --model, the
                                             versions and SHA-256 check of each deep model in the saved chain F
        Run `deepext compare --help` for the options.
        """);
    return 1;
}
