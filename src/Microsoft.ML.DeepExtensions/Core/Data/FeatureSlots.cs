using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Models;

namespace Microsoft.ML.DeepExtensions.Models
{
    /// <summary>
    /// <see cref="Length"/> consecutive slots of a feature vector from <see cref="Start"/>, under one name: a numeric
    /// feature (one slot) or a one-hot categorical (its slots). An FT-Transformer makes each one a token; a GAN generates a
    /// group of several slots as one categorical.
    /// </summary>
    /// <param name="Name">Display name (the column, e.g. "Age" or "Education").</param>
    /// <param name="Start">First slot.</param>
    /// <param name="Length">Slots in the token.</param>
    public sealed record FeatureToken(string Name, int Start, int Length);
}

namespace Microsoft.ML.DeepExtensions.Data
{
    /// <summary>Slot names of a feature column, and the features they group into.</summary>
    internal static class FeatureSlots
    {
        /// <summary>The slot names of a vector column of <paramref name="size"/> slots (its name when scalar), or null when it has none.</summary>
        public static string[]? Names(DataViewSchema.Column column, int size)
        {
            if (size == 1) return [column.Name];
            if (column.Annotations.Schema.GetColumnOrNull("SlotNames") is not { Type: VectorDataViewType { Size: var n } } || n != size)
                return null;
            VBuffer<ReadOnlyMemory<char>> names = default;
            column.GetSlotNames(ref names);
            return names.DenseValues().Select(v => v.ToString()).ToArray();
        }

        /// <summary>Every slot its own feature, named by its index.</summary>
        public static FeatureToken[] PerSlot(int size) => Enumerable.Range(0, size).Select(i => new FeatureToken($"f{i}", i, 1)).ToArray();

        /// <summary>
        /// Features from slot names: consecutive slots named "Column.Value" (as <c>OneHotEncoding → Concatenate</c> writes
        /// them) form one feature named "Column"; every other slot is its own numeric feature.
        /// </summary>
        public static FeatureToken[] Groups(IReadOnlyList<string> names)
        {
            var tokens = new List<FeatureToken>();
            for (int i = 0; i < names.Count;)
            {
                string n = names[i] ?? "";
                int dot = n.IndexOf('.');
                string? prefix = dot > 0 ? n[..dot] : null;
                int j = i + 1;
                if (prefix != null)
                    while (j < names.Count && (names[j] ?? "").StartsWith(prefix + ".", StringComparison.Ordinal)) j++;
                tokens.Add(prefix != null && j - i > 1 ? new FeatureToken(prefix, i, j - i) : new FeatureToken(n.Length > 0 ? n : $"f{i}", i, 1));
                i = j;
            }
            return tokens.ToArray();
        }
    }
}
