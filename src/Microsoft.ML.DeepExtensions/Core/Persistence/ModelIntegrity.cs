namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// What a saved model recorded about its own bytes: the SHA-256 of its manifest (network spec, options, history) and of
/// its weights, and whether loading checked them. Models saved before the hashes existed load as
/// <see cref="NotRecorded"/>.
/// </summary>
public sealed class ModelIntegrity
{
    private ModelIntegrity(string? manifestSha256, string? weightsSha256, bool verified) =>
        (ManifestSha256, WeightsSha256, Verified) = (manifestSha256, weightsSha256, verified);

    /// <summary>Hex SHA-256 of the manifest JSON as saved; null when the file recorded none.</summary>
    public string? ManifestSha256 { get; }

    /// <summary>Hex SHA-256 of the weights as saved; null when the file recorded none.</summary>
    public string? WeightsSha256 { get; }

    /// <summary>True when the model was loaded and both hashes matched its bytes.</summary>
    public bool Verified { get; }

    /// <summary>A model loaded from a file written before hashes were recorded (format 1): it loads, unverified.</summary>
    public static ModelIntegrity NotRecorded { get; } = new(null, null, false);

    internal static ModelIntegrity Recorded(byte[] manifest, byte[] weights, bool verified) =>
        new(Convert.ToHexStringLower(manifest), Convert.ToHexStringLower(weights), verified);

    /// <inheritdoc />
    public override string ToString() => WeightsSha256 is null
        ? "no hashes recorded (saved before format 2): not verified"
        : $"weights SHA-256 {WeightsSha256[..12]}…, manifest SHA-256 {ManifestSha256![..12]}…" + (Verified ? ": verified on load" : " (as saved)");
}
