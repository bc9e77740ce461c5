// deepext — the command line of Microsoft.ML.DeepExtensions (a .NET tool: `dotnet tool install -g Microsoft.ML.DeepExtensions.Cli`).
//
//   deepext compare                                   CNN and MLP against LightGBM and SDCA on the embedded Fashion-MNIST
//   deepext compare --dataset adult.csv --label "label(IsOver50K)" --time 2m
//   deepext predict --model compare-output/best-model.zip --dataset new.csv --output predictions.csv
//   deepext doctor [--model best-model.zip]
//   deepext --help, deepext compare --help
using System.CommandLine;
using Microsoft.ML.DeepExtensions.Cli;

var root = new RootCommand("deepext: deep networks (TorchSharp) against ML.NET's classic trainers, from the command line.");
root.Options.Add(Ui.PlainOption);
root.Subcommands.Add(CompareCommand.Create());
root.Subcommands.Add(PredictCommand.Create());
root.Subcommands.Add(DoctorCommand.Create());
root.Subcommands.Add(WorkerCommand.Create());
return root.Parse(args).Invoke();
