using System.Text.Json;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Persistence;

namespace Microsoft.ML.DeepExtensions.Training;

/// <summary>Checkpoint files: the spec (checked on resume), the history so far, the network weights and the optimizer state.</summary>
internal static class Checkpoint
{
    private static readonly byte[] Magic = "MLDEEPXC"u8.ToArray();

    /// <summary>Writes <c>checkpoint-epoch{N}.deepckpt</c> (atomically) and returns its path.</summary>
    public static string Write(string directory, TrainingContext ctx)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, $"checkpoint-epoch{ctx.Record!.Epoch:D4}.deepckpt");
        var tmp = path + ".tmp";
        using (var writer = new BinaryWriter(File.Create(tmp)))
        {
            writer.Write(Magic);
            writer.Write(ctx.Record!.Epoch);
            writer.Write(JsonSerializer.Serialize(ctx.Spec, ModelManifest.Json));
            writer.Write(JsonSerializer.Serialize(ctx.History, ModelManifest.Json));
            ctx.Module.save(writer);
            ctx.Stepper.Save(writer);
        }
        File.Move(tmp, path, overwrite: true);
        return path;
    }

    /// <summary>Loads a checkpoint into <paramref name="network"/> and <paramref name="stepper"/>; returns the epoch it recorded.</summary>
    public static int Read(string path, NetworkSpec spec, TorchSharp.torch.nn.Module network, IStepper stepper, out TrainingHistory history)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint '{path}' does not exist.", path);
        using var reader = new BinaryReader(File.OpenRead(path));
        if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic))
            throw new FormatException($"'{path}' is not a Microsoft.ML.DeepExtensions checkpoint.");
        int epoch = reader.ReadInt32();
        string savedSpec = reader.ReadString();
        string currentSpec = JsonSerializer.Serialize(spec, ModelManifest.Json);
        if (savedSpec != currentSpec)
            throw new InvalidOperationException($"Checkpoint '{path}' was written for a different network ({savedSpec}); this trainer builds {currentSpec}.");
        history = JsonSerializer.Deserialize<TrainingHistory>(reader.ReadString(), ModelManifest.Json) ?? new TrainingHistory();
        network.load(reader);
        stepper.Load(reader);
        return epoch;
    }
}
