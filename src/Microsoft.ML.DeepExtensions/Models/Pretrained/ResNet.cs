using Microsoft.ML.DeepExtensions.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>
/// A ResNet of basic blocks (He et al. 2016) without its classifier: [B, 3, H, W] → pooled features [B, 512]. Blocks per
/// stage: [2, 2, 2, 2] is torchvision's ResNet18; ML.NET's ResNet18 (converted from CNTK) has [2, 2, 2, 3]. Parameter names follow
/// torchvision's (<c>conv1</c>, <c>bn1</c>, <c>layer1.0.conv1</c>, ..., <c>layer2.0.downsample.0</c>), so a torchvision
/// state dict loads as is. Built here rather than taken from TorchVision so that every layer exports to ONNX and the
/// pooled features are the module's output.
/// </summary>
internal sealed class ResNet : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly nn.Module<Tensor, Tensor> conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4;

    public const int Features = 512;
    private static readonly int[] Widths = [64, 128, 256, 512];

    public ResNet(int[] blocks) : base(nameof(ResNet))
    {
        conv1 = nn.Conv2d(3, 64, 7, stride: 2, padding: 3, bias: false);
        bn1 = nn.BatchNorm2d(64);
        relu = nn.ReLU();
        maxpool = nn.MaxPool2d(3, 2, 1);
        layer1 = Stage(64, 64, 1, blocks[0]);
        layer2 = Stage(64, 128, 2, blocks[1]);
        layer3 = Stage(128, 256, 2, blocks[2]);
        layer4 = Stage(256, 512, 2, blocks[3]);
        RegisterComponents();
    }

    private static nn.Module<Tensor, Tensor> Stage(int input, int output, int stride, int blocks) =>
        nn.Sequential(Enumerable.Range(0, blocks).Select(i => ($"{i}", (nn.Module<Tensor, Tensor>)new BasicBlock(i == 0 ? input : output, output, i == 0 ? stride : 1))));

    /// <summary>Trainable parameters of a ResNet with these blocks per stage (convolutions without bias, batch norms).</summary>
    public static long ParameterCount(int[] blocks)
    {
        long count = 64 * 3 * 49 + 2 * 64;
        for (int s = 0; s < 4; s++)
        {
            long w = Widths[s], input = s == 0 ? 64 : Widths[s - 1];
            count += w * input * 9 + w * w * 9 + 4 * w + (input != w ? w * input + 2 * w : 0);   // first block, with its shortcut
            count += (blocks[s] - 1) * (2 * w * w * 9 + 4 * w);
        }
        return count;
    }

    /// <summary>Blocks per stage of a ResNet ONNX graph: each stage's 3×3 convolutions (by output width) come two per block.</summary>
    public static int[] Blocks(OnnxModelContents onnx) => Widths.Select(w => onnx.Nodes.Count(n => n.OpType == "Conv"
        && onnx.Initializers.TryGetValue(n.Inputs[1], out var k) && k.Shape is [var o, _, 3, 3] && o == w) / 2).ToArray();

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = maxpool.call(relu.call(bn1.call(conv1.call(x))));
        h = layer4.call(layer3.call(layer2.call(layer1.call(h))));
        return h.mean([2, 3]).MoveToOuterDisposeScope();
    }

    public string ExportOnnx(OnnxGraph g, string x, string path)
    {
        foreach (var (name, child) in named_children())
            x = OnnxModules.Export(g, child, x, $"{path}.{name}");
        return g.Node("Flatten", [g.Node("GlobalAveragePool", [x], $"{path}.pool")], $"{path}.flatten", ("axis", 1L));
    }

    /// <summary>
    /// The name map from a ResNet18 ONNX graph (any exporter: weights are found by the graph's structure, not their
    /// names) to this module's state dict: 3×3 and 7×7 convolutions in graph order are the stem and the blocks'
    /// convolutions, 1×1 convolutions the shortcuts, and each convolution's batch norm is the node that reads its output.
    /// </summary>
    public static Dictionary<string, string> OnnxNameMap(OnnxModelContents onnx, string prefix)
    {
        var blocks = Blocks(onnx);
        var main = new List<string> { "conv1" };
        var shortcuts = new List<string>();
        for (int stage = 1; stage <= 4; stage++)
            for (int block = 0; block < blocks[stage - 1]; block++)
            {
                main.Add($"layer{stage}.{block}.conv1");
                main.Add($"layer{stage}.{block}.conv2");
                if (stage > 1 && block == 0) shortcuts.Add($"layer{stage}.0.downsample.0");
            }
        var convs = onnx.Nodes.Where(n => n.OpType == "Conv").ToList();
        bool IsShortcut(OnnxNode conv) => onnx.Initializers.TryGetValue(conv.Inputs[1], out var w) && w.Shape is [_, _, 1, 1];
        var mainConvs = convs.Where(c => !IsShortcut(c)).ToList();
        var shortcutConvs = convs.Where(IsShortcut).ToList();
        if (mainConvs.Count != main.Count || shortcutConvs.Count != shortcuts.Count)
            throw new InvalidDataException($"The ONNX graph is not a ResNet of basic blocks: it has {mainConvs.Count} 3×3/7×7 and {shortcutConvs.Count} 1×1 convolutions; blocks [{string.Join(", ", blocks)}] need {main.Count} and {shortcuts.Count}.");
        var map = new Dictionary<string, string>();
        void Add(OnnxNode conv, string name)
        {
            map[$"{prefix}{name}.weight"] = conv.Inputs[1];
            if (conv.Inputs.Count > 2 && conv.Inputs[2].Length > 0)
                throw new InvalidDataException($"ONNX convolution '{conv.Name}' has a bias; ResNet18's convolutions have none (batch norm follows).");
            var bn = onnx.Nodes.SingleOrDefault(n => n.OpType == "BatchNormalization" && n.Inputs[0] == conv.Outputs[0])
                ?? throw new InvalidDataException($"ONNX convolution '{conv.Name}' is not followed by a batch normalization.");
            string norm = name == "conv1" ? "bn1" : name.EndsWith(".downsample.0") ? name[..^1] + "1" : name.Replace(".conv", ".bn");
            string[] parts = ["weight", "bias", "running_mean", "running_var"];
            for (int i = 0; i < 4; i++) map[$"{prefix}{norm}.{parts[i]}"] = bn.Inputs[i + 1];
        }
        for (int i = 0; i < main.Count; i++) Add(mainConvs[i], main[i]);
        for (int i = 0; i < shortcuts.Count; i++) Add(shortcutConvs[i], shortcuts[i]);
        return map;
    }

    private sealed class BasicBlock : nn.Module<Tensor, Tensor>, IOnnxExportable
    {
        private readonly nn.Module<Tensor, Tensor> conv1, bn1, conv2, bn2, relu;
        private readonly nn.Module<Tensor, Tensor>? downsample;

        public BasicBlock(int input, int output, int stride) : base(nameof(BasicBlock))
        {
            conv1 = nn.Conv2d(input, output, 3, stride: stride, padding: 1, bias: false);
            bn1 = nn.BatchNorm2d(output);
            conv2 = nn.Conv2d(output, output, 3, stride: 1, padding: 1, bias: false);
            bn2 = nn.BatchNorm2d(output);
            relu = nn.ReLU();
            if (stride != 1 || input != output)
                downsample = nn.Sequential(("0", nn.Conv2d(input, output, 1, stride: stride, bias: false)), ("1", nn.BatchNorm2d(output)));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var h = bn2.call(conv2.call(relu.call(bn1.call(conv1.call(x)))));
            var shortcut = downsample is null ? x : downsample.call(x);
            return relu.call(h.add_(shortcut)).MoveToOuterDisposeScope();
        }

        public string ExportOnnx(OnnxGraph g, string x, string path)
        {
            string h = x;
            foreach (var name in new[] { "conv1", "bn1", "relu", "conv2", "bn2" })
                h = OnnxModules.Export(g, name switch { "conv1" => conv1, "bn1" => bn1, "relu" => relu, "conv2" => conv2, _ => bn2 }, h, $"{path}.{name}");
            string shortcut = downsample is null ? x : OnnxModules.Export(g, downsample, x, $"{path}.downsample");
            return OnnxModules.Export(g, relu, g.Add(h, shortcut, $"{path}.add"), $"{path}.relu_out");
        }
    }
}
