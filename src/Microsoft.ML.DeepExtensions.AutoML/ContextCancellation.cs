using System.Reflection;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>
/// Stops ML.NET trainers running in an <see cref="MLContext"/>. ML.NET has <c>MLContext.CancelExecution()</c> (its
/// AutoML uses it to enforce time budgets), but it is not public; its trainers check it between iterations and throw
/// <see cref="OperationCanceledException"/>. The one reflective call is isolated here: when a future ML.NET removes it,
/// classic candidates simply run to completion instead of stopping at their deadline.
/// </summary>
internal static class ContextCancellation
{
    private static readonly MethodInfo? CancelExecution =
        typeof(MLContext).GetMethod("CancelExecution", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic, Type.EmptyTypes);

    /// <summary>Whether this ML.NET version can be stopped.</summary>
    public static bool Supported => CancelExecution is not null;

    /// <summary>Cancels everything running in <paramref name="context"/> (permanently: use a context per run).</summary>
    public static void Cancel(MLContext context) => CancelExecution?.Invoke(context, null);
}
