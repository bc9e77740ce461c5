using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Persistence;

/// <summary>
/// The self-describing binary entry every fitted model writes inside ML.NET's model file: a marker, the manifest JSON
/// (spec, options, history, versions), then the module's weights. Shared by every kind of fitted model.
/// </summary>
internal static class ModelEntry
{
    /// <summary>Writes <paramref name="magic"/>, the manifest (stamped with the current versions) and the weights.</summary>
    public static void Write(BinaryWriter writer, byte[] magic, ModelManifest manifest, nn.Module module, object gate)
    {
        writer.Write(magic);
        manifest.Versions = VersionStamp.Current();
        writer.Write(manifest.ToJson());
        using var weights = new MemoryStream();
        using (var w = new BinaryWriter(weights, Encoding.UTF8, leaveOpen: true))
            lock (gate) module.save(w);
        writer.Write(weights.Length);
        writer.Write(weights.GetBuffer(), 0, (int)weights.Length);
    }

    /// <summary>
    /// Reads an entry written by <see cref="Write"/>: checks the marker, reads the manifest, builds the network with
    /// <paramref name="build"/> and loads its weights. Throws <see cref="FormatException"/> for foreign or corrupt input.
    /// </summary>
    /// <param name="reader">Positioned at the entry.</param>
    /// <param name="magic">The marker the entry must start with.</param>
    /// <param name="what">What the entry holds, for messages ("model", "GAN").</param>
    /// <param name="build">Builds the untrained network the manifest describes.</param>
    public static (ModelManifest Manifest, TNetwork Network) Read<TNetwork>(BinaryReader reader, byte[] magic, string what,
        Func<ModelManifest, TNetwork> build) where TNetwork : nn.Module
    {
        try
        {
            var marker = reader.ReadBytes(magic.Length);
            if (!marker.AsSpan().SequenceEqual(magic))
                throw new FormatException($"The entry does not start with the Microsoft.ML.DeepExtensions {what} marker: it is not a {what} written by this library.");
            var manifest = ModelManifest.FromJson(reader.ReadString());
            long length = reader.ReadInt64();
            if (length <= 0 || length > int.MaxValue)
                throw new FormatException($"The weights block has an impossible length ({length}).");
            var bytes = reader.ReadBytes((int)length);
            if (bytes.Length != length)
                throw new FormatException($"The weights block is truncated ({bytes.Length} of {length} bytes).");
            manifest.Spec.Validate();
            DeepRuntime.EnsureNativeLibrary();
            var network = build(manifest);
            try
            {
                using var weights = new BinaryReader(new MemoryStream(bytes));
                network.load(weights);
            }
            catch (Exception e)
            {
                network.Dispose();
                throw new FormatException($"The weights do not match the {manifest.Spec.Family} network the {what} describes: {e.Message}", e);
            }
            return (manifest, network);
        }
        catch (Exception e) when (e is EndOfStreamException or System.Text.Json.JsonException or DecoderFallbackException or IOException)
        {
            throw new FormatException($"The Microsoft.ML.DeepExtensions {what} is corrupt or truncated: {e.Message}", e);
        }
    }
}
