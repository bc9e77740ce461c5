using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Microsoft.ML.DeepExtensions.Network;

namespace Microsoft.ML.DeepExtensions
{
    /// <summary>
    /// Names a type in saved models: the JSON discriminator of a <see cref="NetworkSpec"/> ("family") or a
    /// <see cref="FeatureInput"/> ("kind"). A family's spec, or an input kind, carries it in its own file; the core finds
    /// every such type of this assembly, and <see cref="NetworkSpec.Register"/> / <see cref="FeatureInput.Register"/> add
    /// those of other assemblies.
    /// </summary>
    /// <param name="name">The stable name written into model files (never change it once models are saved).</param>
    [AttributeUsage(AttributeTargets.Class, Inherited = false)]
    public sealed class SerializedNameAttribute(string name) : Attribute
    {
        /// <summary>The name written into model files.</summary>
        public string Name { get; } = name;
    }
}

namespace Microsoft.ML.DeepExtensions.Persistence
{
    /// <summary>The polymorphic model-file types: each base, its discriminator, and the named types deriving from it.</summary>
    internal static class SerializedTypes
    {
        private static readonly Dictionary<Type, (string Discriminator, Dictionary<string, Type> Types)> Bases = new()
        {
            [typeof(NetworkSpec)] = ("family", Scan(typeof(NetworkSpec))),
            [typeof(FeatureInput)] = ("kind", Scan(typeof(FeatureInput))),
        };
        private static JsonSerializerOptions? _options;

        /// <summary>The model-file JSON settings over the types registered so far.</summary>
        public static JsonSerializerOptions Options
        {
            get
            {
                lock (Bases)
                    return _options ??= new JsonSerializerOptions
                    {
                        WriteIndented = false,
                        Converters = { new JsonStringEnumConverter() },
                        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
                        TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { AddDerivedTypes } },
                    };
            }
        }

        private static Dictionary<string, Type> Scan(Type baseType) => baseType.Assembly.GetTypes()
            .Where(t => t.IsSubclassOf(baseType) && !t.IsAbstract && t.GetCustomAttribute<SerializedNameAttribute>() is not null)
            .ToDictionary(t => t.GetCustomAttribute<SerializedNameAttribute>()!.Name);

        /// <summary>Registers <paramref name="type"/> (it must carry <see cref="SerializedNameAttribute"/>) under <paramref name="baseType"/>.</summary>
        public static void Register(Type baseType, Type type)
        {
            ArgumentNullException.ThrowIfNull(type);
            if (!type.IsSubclassOf(baseType) || type.IsAbstract)
                throw new ArgumentException($"{type.Name} is not a concrete {baseType.Name}.", nameof(type));
            var name = type.GetCustomAttribute<SerializedNameAttribute>()?.Name
                ?? throw new ArgumentException($"{type.Name} needs a [SerializedName(\"...\")] attribute.", nameof(type));
            var types = Bases[baseType].Types;
            lock (Bases)
            {
                if (types.TryGetValue(name, out var existing))
                {
                    if (existing == type) return;
                    throw new ArgumentException($"The name '{name}' is taken by {existing.FullName}.", nameof(type));
                }
                types[name] = type;
                _options = null;   // type metadata is cached per options instance: the next model file sees the new type
            }
        }

        /// <summary>A JSON contract modifier: makes each base polymorphic over its registered types.</summary>
        private static void AddDerivedTypes(JsonTypeInfo info)
        {
            if (!Bases.TryGetValue(info.Type, out var entry)) return;
            var options = new JsonPolymorphismOptions { TypeDiscriminatorPropertyName = entry.Discriminator };
            lock (Bases)
                foreach (var (name, type) in entry.Types.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    options.DerivedTypes.Add(new JsonDerivedType(type, name));
            info.PolymorphismOptions = options;
        }
    }
}
