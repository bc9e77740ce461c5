namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// A model file (or the model entry inside it) that cannot be loaded as it stands: not a model, written by a newer
/// format, truncated, or altered since it was saved (its SHA-256 hashes do not match). The message says which;
/// <see cref="Path"/> names the file when the load started from one.
/// </summary>
public sealed class ModelFileException : FormatException
{
    /// <summary>Creates the exception for a problem found inside a model entry (no file known).</summary>
    public ModelFileException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    public ModelFileException(string path, string problem, Exception? inner) : base($"Model file '{path}': {problem}", inner) => Path = path;

    /// <summary>The model file, when known.</summary>
    public string? Path { get; }
}
