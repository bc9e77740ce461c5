using System.Reflection;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Network;

/// <summary>
/// Names a <see cref="NetworkSpec"/> type in saved models (the JSON "family" discriminator). A family's spec class carries
/// it in its own folder; the core finds every such class of this assembly, and <see cref="NetworkSpec.Register"/> adds
/// those of other assemblies.
/// </summary>
/// <param name="name">The stable name written into model files (never change it once models are saved).</param>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class NetworkSpecNameAttribute(string name) : Attribute
{
    /// <summary>The name written into model files.</summary>
    public string Name { get; } = name;
}

/// <summary>
/// A plain, serialisable description of a network. It is what a saved model stores, so a model rebuilds itself
/// with no user code: each family's spec class names itself with <see cref="NetworkSpecNameAttribute"/>.
/// </summary>
public abstract class NetworkSpec
{
    private static readonly Dictionary<string, Type> Registry = typeof(NetworkSpec).Assembly.GetTypes()
        .Where(t => t.IsSubclassOf(typeof(NetworkSpec)) && !t.IsAbstract && t.GetCustomAttribute<NetworkSpecNameAttribute>() is not null)
        .ToDictionary(t => t.GetCustomAttribute<NetworkSpecNameAttribute>()!.Name);
    private static bool _sealed;

    /// <summary>
    /// Registers a spec type of another assembly (it must carry <see cref="NetworkSpecNameAttribute"/>), before the first
    /// model is trained, saved or loaded in the process. Registering the same type again does nothing.
    /// </summary>
    public static void Register(Type specType)
    {
        ArgumentNullException.ThrowIfNull(specType);
        if (!specType.IsSubclassOf(typeof(NetworkSpec)) || specType.IsAbstract)
            throw new ArgumentException($"{specType.Name} is not a concrete NetworkSpec.", nameof(specType));
        var name = specType.GetCustomAttribute<NetworkSpecNameAttribute>()?.Name
            ?? throw new ArgumentException($"{specType.Name} needs a [NetworkSpecName(\"...\")] attribute.", nameof(specType));
        lock (Registry)
        {
            if (Registry.TryGetValue(name, out var existing))
            {
                if (existing == specType) return;
                throw new ArgumentException($"The spec name '{name}' is taken by {existing.FullName}.", nameof(specType));
            }
            if (_sealed) throw new InvalidOperationException($"Register {specType.Name} before the first model is trained, saved or loaded.");
            Registry[name] = specType;
        }
    }

    /// <summary>A JSON contract modifier: makes <see cref="NetworkSpec"/> polymorphic over the registered spec types.</summary>
    internal static void AddDerivedTypes(JsonTypeInfo info)
    {
        if (info.Type != typeof(NetworkSpec)) return;
        var options = new JsonPolymorphismOptions { TypeDiscriminatorPropertyName = "family" };
        lock (Registry)
        {
            _sealed = true;
            foreach (var (name, type) in Registry.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                options.DerivedTypes.Add(new JsonDerivedType(type, name));
        }
        info.PolymorphismOptions = options;
    }

    /// <summary>Length of the flattened feature vector the network reads.</summary>
    public int InputSize { get; set; }

    /// <summary>Outputs: 1 (binary logit or regression value) or the number of classes.</summary>
    public int OutputSize { get; set; }

    /// <summary>The image shape an image feature column is decoded to, for networks that read images; null otherwise.</summary>
    [JsonIgnore]
    public virtual ImageShape? InputImage => null;

    /// <summary>
    /// For networks that read token sequences: how the key vector is read (vocabulary, maximum length). The trainer sets
    /// it after building the spec; null for float input.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public TokenInput? InputTokens { get; set; }

    /// <summary>
    /// For networks that read variable-length numeric sequences: how the vector of Single is read (values per step, maximum
    /// steps, overflow; the input is <see cref="SequenceInput.Size"/> floats). The trainer sets it after building the spec;
    /// null for fixed-size input.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public SequenceInput? InputSequence { get; set; }

    /// <summary>The family's display name ("MLP", "Perceptron", ...).</summary>
    [JsonIgnore]
    public abstract string Family { get; }

    /// <summary>Builds the TorchSharp module: float input [batch, InputSize] → output [batch, OutputSize].</summary>
    public abstract nn.Module<Tensor, Tensor> Build();

    /// <summary>The layers for <see cref="NetworkSummary"/>: name, output shape (without batch), parameter count.</summary>
    public abstract IEnumerable<LayerInfo> Layers();

    /// <summary>A Keras-like layer table (layer, output shape, parameters, total).</summary>
    public NetworkSummary Summary() => new(Family, Layers().ToList());

    /// <summary>Checks the spec; throws naming the offending layer or setting.</summary>
    public virtual void Validate()
    {
        if (InputSize < 1) throw new InvalidOperationException($"{Family}: the input size must be at least 1 (got {InputSize}).");
        if (OutputSize < 1) throw new InvalidOperationException($"{Family}: the output size must be at least 1 (got {OutputSize}).");
    }
}

/// <summary>One row of a <see cref="NetworkSummary"/>.</summary>
/// <param name="Name">Layer name and type.</param>
/// <param name="OutputShape">Output shape without the batch dimension.</param>
/// <param name="Parameters">Trainable parameters.</param>
public sealed record LayerInfo(string Name, long[] OutputShape, long Parameters);

/// <summary>A Keras-like model summary.</summary>
/// <param name="Family">Network family.</param>
/// <param name="Layers">The layers in order.</param>
public sealed record NetworkSummary(string Family, IReadOnlyList<LayerInfo> Layers)
{
    /// <summary>Total trainable parameters.</summary>
    public long TotalParameters => Layers.Sum(l => l.Parameters);

    /// <inheritdoc />
    public override string ToString()
    {
        const int w1 = 32, w2 = 20, w3 = 12;
        var line = new string('─', w1 + w2 + w3);
        var rows = Layers.Select(l => $"{l.Name,-w1}{"(" + string.Join(", ", l.OutputShape) + ")",-w2}{l.Parameters,w3:N0}");
        return string.Join(Environment.NewLine, new[] { $"{Family}", line, $"{"Layer",-w1}{"Output shape",-w2}{"Params",w3}", line }
            .Concat(rows).Append(line).Append($"Total params: {TotalParameters:N0}"));
    }
}
