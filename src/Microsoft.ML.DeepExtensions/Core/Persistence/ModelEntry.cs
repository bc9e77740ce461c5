using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Persistence;

/// <summary>
/// The self-describing binary entry every fitted model writes inside ML.NET's model file: a marker with a format byte,
/// the manifest JSON (spec, options, history, versions), the module's weights, and the SHA-256 of the manifest and of
/// the weights, which loading verifies. Format 1 (before the hashes) still loads, reported as not verified.
/// </summary>
internal static class ModelEntry
{
    private const byte LegacyFormat = 1, HashedFormat = 2;
    private const int HashBytes = 32;

    /// <summary>Writes <paramref name="marker"/> (7 bytes) with the format byte, the manifest (stamped with the current versions), the weights and their hashes.</summary>
    public static void Write(BinaryWriter writer, byte[] marker, ModelManifest manifest, nn.Module module, object gate)
    {
        manifest.Versions = VersionStamp.Current();
        var json = Encoding.UTF8.GetBytes(manifest.ToJson());
        using var weights = new MemoryStream();
        using (var w = new BinaryWriter(weights, Encoding.UTF8, leaveOpen: true))
            lock (gate) module.save(w);
        var weightBytes = weights.GetBuffer().AsSpan(0, (int)weights.Length);
        writer.Write(marker);
        writer.Write(HashedFormat);
        writer.Write(json.Length);
        writer.Write(json);
        writer.Write(weights.Length);
        writer.Write(weightBytes);
        writer.Write(SHA256.HashData(json));
        writer.Write(SHA256.HashData(weightBytes));
        manifest.Versions.Integrity = ModelIntegrity.Recorded(SHA256.HashData(json), SHA256.HashData(weightBytes), verified: false);
    }

    /// <summary>
    /// Reads an entry written by <see cref="Write"/>: checks the marker, reads the manifest and the weights, verifies
    /// their hashes, builds the network with <paramref name="build"/> and loads the weights. Throws
    /// <see cref="ModelFileException"/> for foreign, altered or truncated input.
    /// </summary>
    /// <param name="reader">Positioned at the entry.</param>
    /// <param name="marker">The 7-byte marker the entry must start with.</param>
    /// <param name="what">What the entry holds, for messages ("model", "GAN").</param>
    /// <param name="build">Builds the untrained network the manifest describes.</param>
    public static (ModelManifest Manifest, TNetwork Network) Read<TNetwork>(BinaryReader reader, byte[] marker, string what,
        Func<ModelManifest, TNetwork> build) where TNetwork : nn.Module
    {
        try
        {
            var found = reader.ReadBytes(marker.Length + 1);
            if (found.Length != marker.Length + 1 || !found.AsSpan(0, marker.Length).SequenceEqual(marker))
                throw Bad($"The entry does not start with the Microsoft.ML.DeepExtensions {what} marker: it is not a {what} written by this library.");
            byte format = found[^1];
            if (format is not (LegacyFormat or HashedFormat))
                throw Bad($"The {what} entry has format {format}; this version of Microsoft.ML.DeepExtensions reads formats {LegacyFormat} and {HashedFormat} (was it written by a newer version?).");

            byte[] json = format == LegacyFormat ? Encoding.UTF8.GetBytes(reader.ReadString()) : ReadBlock(reader, reader.ReadInt32(), "manifest");
            var weights = ReadBlock(reader, reader.ReadInt64(), "weights");
            ModelIntegrity integrity;
            if (format == HashedFormat)
            {
                var manifestHash = ReadBlock(reader, HashBytes, "manifest hash");
                var weightsHash = ReadBlock(reader, HashBytes, "weights hash");
                if (!SHA256.HashData(json).AsSpan().SequenceEqual(manifestHash))
                    throw Bad($"The {what}'s manifest (network spec, options, history) does not match the SHA-256 recorded when it was saved: the file was altered.");
                if (!SHA256.HashData(weights).AsSpan().SequenceEqual(weightsHash))
                    throw Bad($"The {what}'s weights do not match the SHA-256 recorded when it was saved: the file was altered.");
                integrity = ModelIntegrity.Recorded(manifestHash, weightsHash, verified: true);
            }
            else integrity = ModelIntegrity.NotRecorded;

            var manifest = ModelManifest.FromJson(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(json));
            manifest.Versions.Integrity = integrity;
            manifest.Spec.Validate();
            DeepRuntime.EnsureNativeLibrary();
            var network = build(manifest);
            try
            {
                using var w = new BinaryReader(new MemoryStream(weights));
                network.load(w);
            }
            catch (Exception e)
            {
                network.Dispose();
                throw new ModelFileException($"The weights do not match the {manifest.Spec.Family} network the {what} describes: {e.Message}", e);
            }
            return (manifest, network);
        }
        catch (Exception e) when (e is EndOfStreamException or System.Text.Json.JsonException or DecoderFallbackException or IOException
                                      or FormatException and not ModelFileException)
        {
            throw new ModelFileException($"The Microsoft.ML.DeepExtensions {what} is corrupt or truncated: {e.Message}", e);
        }
    }

    private static byte[] ReadBlock(BinaryReader reader, long length, string what)
    {
        if (length <= 0 || length > int.MaxValue) throw Bad($"The {what} block has an impossible length ({length}).");
        var bytes = reader.ReadBytes((int)length);
        if (bytes.Length != length) throw Bad($"The {what} block is truncated ({bytes.Length} of {length} bytes).");
        return bytes;
    }

    private static ModelFileException Bad(string message) => new(message);
}
