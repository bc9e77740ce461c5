// deepext — the command line of Microsoft.ML.DeepExtensions.
//
//   dotnet run -c Release --project src/Microsoft.ML.DeepExtensions.Cli -- compare
//       CNN and MLP against LightGBM and SDCA on the embedded Fashion-MNIST 10k split (80 % train / 20 % validation)
//   dotnet run -c Release --project src/Microsoft.ML.DeepExtensions.Cli -- compare --dataset adult.csv --label "label(IsOver50K)" --time 120
//   ... compare --help
using Microsoft.ML.DeepExtensions.Cli;

return args.FirstOrDefault() switch
{
    "compare" => CompareCommand.Run(args[1..]),
    "doctor" or "--doctor" => Doctor(),
    _ => Usage(),
};

static int Doctor()
{
    Console.WriteLine(Microsoft.ML.DeepExtensions.DeepRuntime.Describe());
    return 0;
}

static int Usage()
{
    Console.Error.WriteLine("""
        usage: deepext compare [options]     deep vs classic ML.NET trainers: leaderboard, CSV/JSON/HTML report, best model
               deepext doctor                TorchSharp/libtorch versions, native library, device
        Run `deepext compare --help` for the options.
        """);
    return 1;
}
