using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.DeepExtensions.Data;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.Persistence;

/// <summary>
/// The self-describing part of a saved model: everything needed to rebuild the network and its output columns with no
/// user code, plus the versions that wrote it and the trainer options and history, for the record.
/// </summary>
internal sealed class ModelManifest
{
    public const string CurrentFormat = "Microsoft.ML.DeepExtensions.Model/1";

    public string Format { get; set; } = CurrentFormat;
    public string Trainer { get; set; } = "";
    public VersionStamp Versions { get; set; } = VersionStamp.Current();
    public NetworkSpec Spec { get; set; } = null!;
    public DeepTask Task { get; set; }
    public string FeatureColumnName { get; set; } = "";
    public string LabelColumnName { get; set; } = "";
    public int ClassCount { get; set; }
    public KeyValuesInfo? LabelKeyValues { get; set; }
    /// <summary>Label values per row: 1, or the steps of a vector label (Score and PredictedLabel are then per step).</summary>
    public int LabelWidth { get; set; } = 1;
    /// <summary>False for non-calibrated binary models (the perceptron): no Probability column.</summary>
    public bool HasProbability { get; set; } = true;
    public TrainingHistory History { get; set; } = new();
    /// <summary>When set, the model is a featurizer: it outputs the penultimate layer under this column name.</summary>
    public string? FeaturesColumnName { get; set; }
    /// <summary>Width of the penultimate layer (featurizers).</summary>
    public int FeaturesSize { get; set; }
    public JsonElement? TrainerOptions { get; set; }

    /// <summary>The model-file JSON settings (rebuilt when a family or input kind of another assembly registers).</summary>
    internal static JsonSerializerOptions Json => SerializedTypes.Options;

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static ModelManifest FromJson(string json)
    {
        var m = JsonSerializer.Deserialize<ModelManifest>(json, Json) ?? throw new FormatException("The model manifest is empty.");
        if (m.Format != CurrentFormat)
            throw new FormatException($"Unsupported model format '{m.Format}'; this library reads '{CurrentFormat}'.");
        if (m.Spec is null) throw new FormatException("The model manifest has no network spec.");
        return m;
    }
}

/// <summary>Library, TorchSharp and libtorch versions that wrote a model.</summary>
public sealed class VersionStamp
{
    /// <summary>Microsoft.ML.DeepExtensions version.</summary>
    public string Library { get; set; } = "";
    /// <summary>TorchSharp version.</summary>
    public string TorchSharp { get; set; } = "";
    /// <summary>libtorch version.</summary>
    public string LibTorch { get; set; } = "";
    /// <summary>When the model was written (UTC).</summary>
    public DateTime SavedUtc { get; set; }

    /// <summary>The hashes the model file recorded and whether loading verified them; null for a model not saved or loaded yet.</summary>
    [JsonIgnore]
    public ModelIntegrity? Integrity { get; internal set; }

    internal static VersionStamp Current() => new()
    {
        Library = Informational(typeof(VersionStamp).Assembly),
        TorchSharp = Informational(typeof(global::TorchSharp.torch).Assembly),
        LibTorch = global::TorchSharp.torch.__version__,
        SavedUtc = DateTime.UtcNow,
    };

    internal static string Informational(Assembly a) =>
        (a.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? a.GetName().Version?.ToString() ?? "?").Split('+')[0];

    /// <inheritdoc />
    public override string ToString() => $"Microsoft.ML.DeepExtensions {Library}, TorchSharp {TorchSharp}, libtorch {LibTorch}"
        + (Integrity is null ? "" : $"; {Integrity}");
}
