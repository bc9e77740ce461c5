using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.DeepExtensions.AutoML;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>
/// Child-process isolation: each candidate trains in a worker process (deepext's hidden `worker` command), and a
/// worker that aborts, hangs or takes too much memory costs only its candidate.
/// </summary>
public class IsolationTests(ITestOutputHelper output)
{
    private static readonly string Cli = typeof(IsolationTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "DeepextCli").Value!;
    private static readonly string Dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";

    private static (IDataView Data, TabularData Table) Adult(MLContext ml)
    {
        var table = TabularData.Load(ml, TestData.Path("adult", "adult.csv"), "label(IsOver50K)");
        return (ml.Data.TakeRows(table.Data, 3000), table);
    }

    [Fact]
    public void Candidates_trained_in_worker_processes_match_their_in_process_scores()
    {
        Assert.True(File.Exists(Cli), $"the CLI was not built at {Cli}");
        var ml = new MLContext(1);
        var (data, table) = Adult(ml);
        ComparisonResult Run(CandidateIsolation isolation) => ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Candidates = ["SDCA", "MLP"], Trials = 1, MaxEpochs = 3, NumberOfThreads = 1, LatencySamples = 20,
            TimeBudget = TimeSpan.FromMinutes(3), Isolation = isolation, WorkerCommand = [Dotnet, Cli, "worker"],
        }).Run(data);
        var isolated = Run(CandidateIsolation.ChildProcess);
        var inProcess = Run(CandidateIsolation.InProcess);
        output.WriteLine(isolated.ToString());
        output.WriteLine(inProcess.ToString());

        foreach (var name in new[] { "SDCA", "MLP" })
        {
            var a = isolated.Entries.Single(e => e.Name == name);
            var b = inProcess.Entries.Single(e => e.Name == name);
            Assert.True(a.Status == CandidateStatus.Completed, $"{name}: {a.Status} {a.Error}");
            // The same seeded training on the same rows, in another process: the same held-out accuracy.
            Assert.Equal(b.Metric("Accuracy"), a.Metric("Accuracy"), 3);
            Assert.True(a.Metric("Accuracy") > 0.78, $"{name} {a.Metric("Accuracy"):F4}");
            // The row comes back whole: the model (loaded here), its measurements, the worker's own peak memory.
            Assert.NotNull(a.Model);
            Assert.True(a.ModelBytes > 0 && a.LatencyP50Milliseconds > 0 && a.PeakMemoryBytes > 0);
            Assert.NotEmpty(a.Parameters);
        }
        Assert.Equal([1, 2, 3], isolated.Entries.Single(e => e.Name == "MLP").History!.Epochs.Select(e => e.Epoch));
        // The ensemble is built here, over the models the workers trained; the best model saves and scores as usual.
        Assert.Contains(isolated.Entries, e => e.Kind == CandidateKind.Ensemble && e.Status == CandidateStatus.Completed);
        string path = Path.Combine(Path.GetTempPath(), $"isolated-{Guid.NewGuid():N}.zip");
        try
        {
            isolated.SaveBestModel(ml, path);
            var loaded = ml.Model.Load(path, out _);
            var accuracy = ml.BinaryClassification.Evaluate(loaded.Transform(data), "Label").Accuracy;
            Assert.True(accuracy > 0.78, $"best model reloaded: {accuracy:F4}");
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void A_worker_that_aborts_hangs_or_takes_too_much_memory_costs_only_its_candidate()
    {
        Assert.True(File.Exists(Cli), $"the CLI was not built at {Cli}");
        var ml = new MLContext(1);
        var (data, table) = Adult(ml);
        // A worker command that misbehaves for three candidates, as a native library can: MLP aborts (what libtorch does
        // when an allocation fails), LightGBM grows without bound, FastTree never returns. SDCA runs the real worker.
        const string script = """
            case "$(grep -o '"Candidate":"[^"]*"' "$3")" in
              *MLP*) echo "terminate called after throwing an instance of 'c10::Error'" >&2; kill -ABRT $$ ;;
              *LightGBM*) exec tail /dev/zero ;;
              *FastTree*) exec sleep 600 ;;
              *) exec "$0" "$1" "$2" "$3" ;;
            esac
            """;
        var result = ml.Deep().Comparison(new ComparisonOptions
        {
            Featurizer = table.Featurizer, Candidates = ["SDCA", "MLP", "LightGBM", "FastTree"], Trials = 1, MaxEpochs = 1, NumberOfThreads = 1, LatencySamples = 20,
            TimeBudget = TimeSpan.FromMinutes(3), CandidateTimeBudget = TimeSpan.FromSeconds(5), CandidateMemoryLimitMegabytes = 700,
            Isolation = CandidateIsolation.ChildProcess, WorkerCommand = ["bash", "-c", script, Dotnet, Cli, "worker"],
        }).Run(data);
        output.WriteLine(result.ToString());
        foreach (var e in result.Entries) output.WriteLine($"{e.Name}: {e.Status} {e.Error} peak {e.PeakMemoryBytes >> 20} MB");

        var sdca = result.Entries.Single(e => e.Name == "SDCA");
        Assert.True(sdca.Status == CandidateStatus.Completed, $"SDCA: {sdca.Status} {sdca.Error}");
        var mlp = result.Entries.Single(e => e.Name == "MLP");
        Assert.Equal(CandidateStatus.Failed, mlp.Status);
        Assert.Contains("SIGABRT", mlp.Error);
        Assert.Contains("c10::Error", mlp.Error);
        var lightGbm = result.Entries.Single(e => e.Name == "LightGBM");
        Assert.Equal(CandidateStatus.Failed, lightGbm.Status);
        Assert.Contains("above the memory limit of 700 MB", lightGbm.Error);
        var fastTree = result.Entries.Single(e => e.Name == "FastTree");
        Assert.Equal(CandidateStatus.TimedOut, fastTree.Status);
        Assert.Contains("killed: no result", fastTree.Error);
        // The run itself finished with a leaderboard and its reports.
        Assert.Same(sdca, result.Best);
        string dir = Path.Combine(Path.GetTempPath(), $"isolation-report-{Guid.NewGuid():N}");
        try
        {
            Assert.Equal(3, Reports.WriteAll(result, dir).Count(File.Exists));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
