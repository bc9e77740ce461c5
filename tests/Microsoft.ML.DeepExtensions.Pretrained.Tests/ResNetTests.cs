using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;
using Microsoft.ML.DeepExtensions.Datasets;

namespace Microsoft.ML.DeepExtensions.Pretrained.Tests;

public class ResNetTests(ITestOutputHelper output)
{
    /// <summary>
    /// The imported backbone computes what the package's own ONNX file computes: the same preprocessed Fashion-MNIST images
    /// (grayscale → BGR, mean subtracted, resized to 224) through our TorchSharp ResNet18 and through ONNX Runtime on
    /// ResNet18.onnx give the same 512 pooled features.
    /// </summary>
    [Fact]
    public void Imported_ResNet18_gives_the_pooled_features_of_the_package_ONNX_file()
    {
        var images = FashionMnist.Read(FashionMnist.FindDirectory("t10k"), "t10k", limit: 6);
        var onnx = PretrainedCnnTrainer.Read(PretrainedModels.ResNet18);
        var spec = new PretrainedCnnSpec { InputSize = 784, OutputSize = 10, Channels = 1, Height = 28, Width = 28, Resolution = 224, Blocks = ResNet.Blocks(onnx) };
        spec.Validate();
        using var body = spec.Build();
        PretrainedCnnTrainer.LoadBackbone(PretrainedModels.ResNet18, onnx, body);
        output.WriteLine($"blocks per stage [{string.Join(", ", spec.Blocks)}], {spec.Summary().TotalParameters:N0} parameters, TorchSharp counts {body.parameters().Sum(p => p.numel()):N0}");
        body.eval();
        var children = body.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);

        using var session = new InferenceSession(File.ReadAllBytes(PretrainedModels.ResNetFile("ResNet18Onnx/ResNet18.onnx")));
        string inputName = session.InputMetadata.Keys.Single();
        double worst = 0, largest = 0;
        using var _ = no_grad();
        foreach (var image in images)
        {
            using var scope = NewDisposeScope();
            var pixels = tensor(image.Pixels.Select(p => (float)p).ToArray()).view(1, 784);
            var prepared = children["input"].call(pixels);
            var ours = children["backbone"].call(prepared).data<float>().ToArray();
            var onnxInput = new DenseTensor<float>(prepared.data<float>().ToArray(), new[] { 1, 3, 224, 224 });
            using var results = session.Run([NamedOnnxValue.CreateFromTensor(inputName, onnxInput)]);
            var theirs = results.Single().AsEnumerable<float>().ToArray();
            Assert.Equal(512, ours.Length);
            Assert.Equal(512, theirs.Length);
            worst = Math.Max(worst, ours.Zip(theirs, (a, b) => Math.Abs(a - b)).Max());
            largest = Math.Max(largest, theirs.Max());
        }
        output.WriteLine($"max |TorchSharp − ONNX Runtime| over {images.Count} images × 512 features: {worst:E2} (largest feature {largest:F2})");
        Assert.True(largest > 0.5, "the pooled features should not be all near zero");
        Assert.True(worst <= 1e-3, $"pooled features differ by {worst}");
    }
}
