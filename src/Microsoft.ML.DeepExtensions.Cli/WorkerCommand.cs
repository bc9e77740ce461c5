using System.CommandLine;
using Microsoft.ML.DeepExtensions.AutoML;

namespace Microsoft.ML.DeepExtensions.Cli;

/// <summary>`deepext worker JOB`: hidden; `compare` starts one per candidate (see <see cref="CandidateIsolation.ChildProcess"/>).</summary>
internal static class WorkerCommand
{
    public const string Name = "worker";

    public static System.CommandLine.Command Create()
    {
        var job = new Argument<string>("job") { Description = "The job file written by the comparison." };
        var command = new System.CommandLine.Command(Name, "Trains one candidate of a comparison (started by compare).") { job };
        command.Hidden = true;
        command.SetAction(parse => CandidateWorker.Run(parse.GetValue(job)!, CompareCommand.Registry()));
        return command;
    }
}
