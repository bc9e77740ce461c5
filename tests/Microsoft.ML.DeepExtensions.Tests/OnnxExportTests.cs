using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>
/// ONNX export: ONNX Runtime's outputs on real held-out rows match the TorchSharp model's (scores within 1e-4,
/// identical labels); ML.NET's ApplyOnnxModel feeds its evaluators the same metrics; the weights read back into a fresh
/// module give identical outputs; a layer without an ONNX form and bad arguments fail with clear messages.
/// </summary>
public sealed class OnnxExportTests(ITestOutputHelper output)
{
    /// <summary>Our columns for every row of <paramref name="test"/>: features, Score, Probability, PredictedLabel (as floats).</summary>
    private static (float[][] Features, float[][] Score, float[] Probability, float[][] Label) Ours(MLContext ml, ITransformer model, IDataView test, DeepTask task)
    {
        var scored = model.Transform(test);
        var features = scored.GetColumn<float[]>("Features").ToArray();
        float[][] score = task == DeepTask.MulticlassClassification || scored.Schema["Score"].Type is VectorDataViewType
            ? scored.GetColumn<float[]>("Score").ToArray()
            : scored.GetColumn<float>("Score").Select(s => new[] { s }).ToArray();
        float[] probability = scored.Schema.GetColumnOrNull("Probability") is null ? [] : scored.GetColumn<float>("Probability").ToArray();
        float[][] label = task switch
        {
            DeepTask.BinaryClassification => scored.GetColumn<bool>("PredictedLabel").Select(b => new[] { b ? 1f : 0 }).ToArray(),
            DeepTask.MulticlassClassification => scored.GetColumn<uint>("PredictedLabel").Select(k => new[] { (float)k }).ToArray(),
            _ => [],
        };
        return (features, score, probability, label);
    }

    /// <summary>Runs the exported file in ONNX Runtime on all rows at once (dynamic batch) and compares every output with ours.</summary>
    private double CompareWithOnnxRuntime(MLContext ml, DeepTransformer model, IDataView test, double tolerance = 1e-4)
    {
        var task = model.Task;
        var ours = Ours(ml, model, test, task);
        string path = Path.Combine(Fixtures.TempDir(), "model.onnx");
        model.ExportOnnx(path);
        using var session = new InferenceSession(path);
        int rows = ours.Features.Length, size = ours.Features[0].Length;
        var input = new DenseTensor<float>(ours.Features.SelectMany(f => f).ToArray(), [rows, size]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("Features", input)]);
        var byName = results.ToDictionary(r => r.Name);

        var score = byName["Score"].AsTensor<float>().ToArray();
        int width = ours.Score[0].Length;
        Assert.Equal(rows * width, score.Length);
        // Absolute difference, relative to the score's size beyond 1 (a perceptron's raw w·x + b runs into the hundreds).
        double maxDiff = 0;
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < width; k++)
                maxDiff = Math.Max(maxDiff, Math.Abs(score[r * width + k] - ours.Score[r][k]) / Math.Max(1, Math.Abs(ours.Score[r][k])));
        if (ours.Probability.Length > 0)
        {
            var p = byName["Probability"].AsTensor<float>().ToArray();
            for (int r = 0; r < rows; r++) maxDiff = Math.Max(maxDiff, Math.Abs(p[r] - ours.Probability[r]));
        }
        if (task == DeepTask.BinaryClassification)
            Assert.Equal(ours.Label.Select(l => l[0] > 0), byName["PredictedLabel"].AsTensor<bool>().ToArray());
        if (task == DeepTask.MulticlassClassification)
            Assert.Equal(ours.Label.Select(l => (uint)l[0]), byName["PredictedLabel"].AsTensor<uint>().ToArray());
        output.WriteLine($"{model.Spec.Family} {task}: {rows} rows, max |ONNX Runtime − TorchSharp| / max(1, |score|) = {maxDiff:G3}");
        Assert.True(maxDiff <= tolerance, $"max difference {maxDiff} > {tolerance}");
        return maxDiff;
    }

    [Fact]
    public void MlpMulticlassBinaryAndRegressionMatchOnnxRuntime()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = Fixtures.Digits(ml);
        using (var multi = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 3, Seed = 1, HiddenLayers = [64, 32], BatchNorm = true, Dropout = 0.1 }).Fit(train))
            CompareWithOnnxRuntime(ml, multi, test);
        using (var binary = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 3, Seed = 1, HiddenLayers = [32] }).Fit(Fixtures.DigitsBinary(ml, "train")))
            CompareWithOnnxRuntime(ml, binary, Fixtures.DigitsBinary(ml, "test"));
        using (var regression = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 3, Seed = 1, HiddenLayers = [32] }).Fit(Fixtures.DigitsRegression(ml, "train")))
            CompareWithOnnxRuntime(ml, regression, Fixtures.DigitsRegression(ml, "test"));
    }

    [Theory]
    [InlineData(Activation.UnitStep)]
    [InlineData(Activation.Sign)]
    [InlineData(Activation.PiecewiseLinear)]
    [InlineData(Activation.Logistic)]
    [InlineData(Activation.Tanh)]
    [InlineData(Activation.Relu)]
    [InlineData(Activation.LeakyRelu)]
    [InlineData(Activation.Softplus)]
    [InlineData(Activation.Gelu)]
    [InlineData(Activation.Linear)]
    public void EveryActivationOfTheSeedTableIsExportedExactly(Activation activation)
    {
        // A grid through the kinks and the exact points where step, sign and the piecewise-linear unit change (0, ±½).
        float[] z = [.. Enumerable.Range(-60, 121).Select(i => i / 20f), -0.5f, 0.5f, 0f, -25f, 25f];
        using var module = Activations.Module(activation);
        module.eval();
        using var x = TorchSharp.torch.tensor(z, [1, z.Length]);
        using var expected = ((TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, TorchSharp.torch.Tensor>)module).call(x);

        var g = new Onnx.OnnxGraph();
        g.Graph.Input.Add(Onnx.OnnxGraph.Value("z", global::Onnx.TensorProto.Types.DataType.Float, [null, z.Length]));
        g.Reserve("z");
        string y = Onnx.OnnxModules.Export(g, module, "z", "activation");
        g.Graph.Node.Add(new global::Onnx.NodeProto { OpType = "Identity", Input = { y }, Output = { "y" } });
        g.Graph.Output.Add(Onnx.OnnxGraph.Value("y", global::Onnx.TensorProto.Types.DataType.Float, [null, z.Length]));
        var model = new global::Onnx.ModelProto { IrVersion = 8, Graph = g.Graph, OpsetImport = { new global::Onnx.OperatorSetIdProto { Version = 17 } } };
        using var session = new InferenceSession(Google.Protobuf.MessageExtensions.ToByteArray(model));
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("z", new DenseTensor<float>(z, [1, z.Length]))]);
        var actual = results.First().AsTensor<float>().ToArray();
        var wanted = expected.data<float>().ToArray();
        double max = wanted.Zip(actual, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{activation}: max |ONNX Runtime − TorchSharp| over {z.Length} points = {max:G3}");
        if (activation is Activation.UnitStep or Activation.Sign or Activation.PiecewiseLinear or Activation.Relu or Activation.Linear)
            Assert.Equal(wanted, actual);   // exact, including f(0) = ½ for the step
        else
            Assert.True(max <= 1e-6, $"{activation}: {max}");
    }

    [Fact]
    public void PerceptronAndCnnOnFashionMnistMatchOnnxRuntime()
    {
        var ml = new MLContext(seed: 1);
        using (var perceptron = ml.Deep().Perceptron(epochs: 3).Fit(Fixtures.DigitsBinary(ml, "train")))
            CompareWithOnnxRuntime(ml, perceptron, Fixtures.DigitsBinary(ml, "test"));

        var images = FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 1200);
        var split = ml.Data.TrainTestSplit(images, 0.25, seed: 1);
        using var cnn = ml.Deep().Cnn(new CnnTrainer.Options { Epochs = 1, Seed = 1, NumberOfThreads = 1 }).Fit(split.TrainSet);
        CompareWithOnnxRuntime(ml, cnn, split.TestSet);
    }

    [Theory]
    [InlineData(SequencePooling.Mean, 7, false)]
    [InlineData(SequencePooling.Cls, 7, false)]
    [InlineData(SequencePooling.Mean, 4, true)]   // two stride-2 convolutions before 1×1 patches
    [InlineData(SequencePooling.Cls, 7, true)]    // an odd side: one stride-1 convolution before 7×7 patches
    public void VitMatchesOnnxRuntime(SequencePooling pooling, int patch, bool stem)
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 600), 0.25, seed: 1);
        var options = new VitTrainer.Options { PatchSize = patch, ConvolutionalStem = stem, Dimension = 16, Heads = 2, Layers = 2, FeedForwardSize = 32, Pooling = pooling, Epochs = 1, Seed = 1, NumberOfThreads = 1 };
        using var vit = ml.Deep().Vit(options).Fit(split.TrainSet);
        CompareWithOnnxRuntime(ml, vit, split.TestSet);
    }

    [Theory]
    [InlineData(LayerNormPosition.Pre)]
    [InlineData(LayerNormPosition.Post)]
    public void FtTransformerMatchesOnnxRuntime(LayerNormPosition norm)
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = Fixtures.Digits(ml);
        using var model = ml.Deep().FtTransformer(new FtTransformerTrainer.Options { Epochs = 1, Seed = 1, Dimension = 16, Heads = 2, Layers = 2, FeedForwardSize = 32, LayerNorm = norm }).Fit(train);
        CompareWithOnnxRuntime(ml, model, test, tolerance: 1e-3);
    }

    /// <summary>
    /// Runs a token-sequence model in ONNX Runtime: the rows' keys become ids (key k → k, a missing key → V + 1),
    /// padded with 0 to the batch's longest row — so most rows carry padding — and compared with our Score.
    /// </summary>
    private double CompareTokens(DeepTransformer model, IDataView featurized, int vocabulary, double tolerance)
    {
        var scored = model.Transform(featurized);
        var keys = scored.GetColumn<VBuffer<uint>>("Tokens").Select(v => v.DenseValues().ToArray()).ToArray();
        float[] ours = model.Task == DeepTask.MulticlassClassification ? scored.GetColumn<float[]>("Score").SelectMany(x => x).ToArray()
            : scored.Schema["Score"].Type is VectorDataViewType ? scored.GetColumn<float[]>("Score").SelectMany(x => x).ToArray()
            : scored.GetColumn<float>("Score").ToArray();
        int rows = keys.Length, longest = keys.Max(k => k.Length);
        var ids = new long[rows * longest];
        for (int r = 0; r < rows; r++)
            for (int t = 0; t < keys[r].Length; t++) ids[r * longest + t] = keys[r][t] == 0 ? vocabulary + 1 : keys[r][t];
        string path = Path.Combine(Fixtures.TempDir(), "tokens.onnx");
        model.ExportOnnx(path);
        using var session = new InferenceSession(path);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("Tokens", new DenseTensor<long>(ids, [rows, longest]))]);
        var score = results.First(r => r.Name == "Score").AsTensor<float>().ToArray();
        Assert.Equal(ours.Length, score.Length);
        double max = ours.Zip(score, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{model.Spec.Family}: {rows} messages of 1–{longest} tokens, padded to {longest}: max |ONNX Runtime − TorchSharp| = {max:G3}");
        Assert.True(max <= tolerance, $"{max}");
        return max;
    }

    private static (MLContext Ml, IDataView Train, IDataView Test, int Vocabulary) SmsTokens()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(TestData.Sms(ml), 700);
        var featurized = TestData.SmsTokenizer(ml).Fit(data).Transform(data);
        var split = ml.Data.TrainTestSplit(ml.Data.Cache(featurized), 0.3, seed: 1);
        int vocabulary = (int)((KeyDataViewType)((VectorDataViewType)featurized.Schema["Tokens"].Type).ItemType).Count;
        return (ml, split.TrainSet, split.TestSet, vocabulary);
    }

    [Theory]
    [InlineData(RecurrentCell.Lstm, false, 1)]
    [InlineData(RecurrentCell.Lstm, true, 2)]
    [InlineData(RecurrentCell.Gru, true, 1)]
    [InlineData(RecurrentCell.Rnn, false, 2)]
    public void RecurrentTokenModelsMatchOnnxRuntimeWithPadding(RecurrentCell cell, bool bidirectional, int layers)
    {
        var (ml, train, test, vocabulary) = SmsTokens();
        using var model = ml.Deep().Lstm(new LstmTrainer.Options
        {
            FeatureColumnName = "Tokens", Cell = cell, Bidirectional = bidirectional, NumLayers = layers, HiddenSize = 16, EmbeddingSize = 16,
            DenseLayers = [8], MaxSequenceLength = 40, Epochs = 1, Seed = 1,
        }).Fit(train);
        CompareTokens(model, test, vocabulary, 1e-4);
    }

    [Theory]
    [InlineData(SequencePooling.Cls, PositionalEncoding.Sinusoidal)]
    [InlineData(SequencePooling.Mean, PositionalEncoding.Learned)]
    public void TextTransformerMatchesOnnxRuntimeWithPadding(SequencePooling pooling, PositionalEncoding positions)
    {
        var (ml, train, test, vocabulary) = SmsTokens();
        using var model = ml.Deep().Transformer(new TransformerTrainer.Options
        {
            FeatureColumnName = "Tokens", Pooling = pooling, Positions = positions, Dimension = 16, Heads = 2, Layers = 2, FeedForwardSize = 32,
            MaxSequenceLength = 40, Epochs = 1, Seed = 1,
        }).Fit(train);
        CompareTokens(model, test, vocabulary, 1e-3);
    }

    public sealed class Window
    {
        public float[] Features { get; set; } = [];
        public float Label { get; set; }
    }

    [Fact]
    public void NumericSequencesOfFixedAndVaryingLengthMatchOnnxRuntime()
    {
        var ml = new MLContext(seed: 1);
        var windows = ml.Deep().SeriesWindows(ml.Data.TakeRows(SequenceData.SeattleTemps(ml), 1500), "Temp", lookBack: 24);
        var split = ml.Data.TrainTestSplit(windows, 0.2, seed: 1);
        // Fixed length (a known-size vector, many-to-one regression): the float input itself.
        using (var fixedModel = ml.Deep().Lstm(new LstmTrainer.Options { HiddenSize = 16, Epochs = 1, Seed = 1, Bidirectional = true }).Fit(split.TrainSet))
            CompareWithOnnxRuntime(ml, fixedModel, split.TestSet);

        // Varying length: each row keeps its last 8–24 hours; ONNX gets the padded steps [N, T, 1] and each row's length.
        var rows = ml.Data.CreateEnumerable<Window>(windows, reuseRowObject: false).Select((w, i) => new Window { Features = w.Features[^(8 + i * 5 % 17)..], Label = w.Label }).ToList();
        var varying = ml.Data.LoadFromEnumerable(rows);
        using var model = ml.Deep().Lstm(new LstmTrainer.Options { HiddenSize = 16, MaxSequenceLength = 24, Epochs = 1, Seed = 1, NumLayers = 2 }).Fit(varying);
        var test = rows.Take(300).ToList();
        var ours = model.Transform(ml.Data.LoadFromEnumerable(test)).GetColumn<float>("Score").ToArray();
        int longest = test.Max(r => r.Features.Length);
        var steps = new float[test.Count * longest];
        for (int r = 0; r < test.Count; r++) test[r].Features.CopyTo(steps, r * longest);
        string path = Path.Combine(Fixtures.TempDir(), "varying.onnx");
        model.ExportOnnx(path);
        using var session = new InferenceSession(path);
        using var results = session.Run([
            NamedOnnxValue.CreateFromTensor("Features", new DenseTensor<float>(steps, [test.Count, longest, 1])),
            NamedOnnxValue.CreateFromTensor("Features_lengths", new DenseTensor<long>(test.Select(r => (long)r.Features.Length).ToArray(), [test.Count])),
        ]);
        var score = results.First(r => r.Name == "Score").AsTensor<float>().ToArray();
        double max = ours.Zip(score, (a, b) => Math.Abs(a - b) / Math.Max(1, Math.Abs(a))).Max();
        output.WriteLine($"LSTM on 8–24-step windows (padded to {longest}): max |ONNX Runtime − TorchSharp| / max(1, |score|) = {max:G3}");
        Assert.True(max <= 1e-4, $"{max}");
    }

    /// <summary>A GAN's two exports: the discriminator scores like Transform, the generator from the same noise gives Generate's rows.</summary>
    private void CompareGan(MLContext ml, GanTransformer gan, IDataView test, int count)
    {
        string dir = Fixtures.TempDir();
        gan.ExportOnnx(Path.Combine(dir, "discriminator.onnx"));
        gan.ExportGeneratorOnnx(Path.Combine(dir, "generator.onnx"));

        var features = test.GetColumn<float[]>(gan.FeatureColumnName).Take(300).ToArray();
        var ours = gan.Transform(ml.Data.TakeRows(test, 300)).GetColumn<float>("Score").ToArray();
        int size = features[0].Length;
        using (var session = new InferenceSession(Path.Combine(dir, "discriminator.onnx")))
        using (var results = session.Run([NamedOnnxValue.CreateFromTensor(gan.FeatureColumnName, new DenseTensor<float>(features.SelectMany(f => f).ToArray(), [features.Length, size]))]))
        {
            double max = ours.Zip(results.First().AsTensor<float>().ToArray(), (a, b) => Math.Abs(a - b)).Max();
            output.WriteLine($"GAN discriminator ({(gan.IsConditional ? "conditional" : "unconditional")}, {features.Length} rows): max |ONNX Runtime − TorchSharp| = {max:G3}");
            Assert.True(max <= 1e-4, $"{max}");
        }

        // Generate(count, seed, class) draws its noise from a generator seeded with seed: the same noise goes to ONNX Runtime.
        const int seed = 3, classIndex = 1;
        float[] noise;
        using (var generator = new TorchSharp.torch.Generator(seed))
        using (var z = TorchSharp.torch.randn([count, gan.Spec.LatentSize], generator: generator))
            noise = z.data<float>().ToArray();
        var generated = gan.Generate(count, seed, gan.IsConditional ? classIndex : null).GetColumn<float[]>(gan.FeatureColumnName).SelectMany(f => f).ToArray();
        using (var session = new InferenceSession(Path.Combine(dir, "generator.onnx")))
        {
            var inputs = new List<NamedOnnxValue> { NamedOnnxValue.CreateFromTensor("Noise", new DenseTensor<float>(noise, [count, gan.Spec.LatentSize])) };
            if (gan.IsConditional) inputs.Add(NamedOnnxValue.CreateFromTensor("Class", new DenseTensor<long>(Enumerable.Repeat((long)classIndex, count).ToArray(), [count])));
            using var results = session.Run(inputs);
            var rows = results.First().AsTensor<float>().ToArray();
            double max = generated.Zip(rows, (a, b) => Math.Abs(a - b) / Math.Max(1, Math.Abs(a))).Max();
            output.WriteLine($"GAN generator: {count} rows × {size}: max |ONNX Runtime − TorchSharp| / max(1, |value|) = {max:G3}");
            // Generated rows are in feature units (Adult's Fnlwgt is ~1e5 after unscaling), not scores: 1e-3 relative.
            Assert.True(max <= 1e-3, $"{max}");
        }
    }

    [Fact]
    public void GanDiscriminatorAndGeneratorMatchOnnxRuntime()
    {
        // Tabular, conditional, with one-hot groups (Adult's categoricals), so the generator's exact one-hot is exported too.
        var ml = new MLContext(seed: 1);
        var adult = ml.Data.TakeRows(TestData.Adult(ml), 3000);
        var prep = TestData.AdultFeaturizer(ml).Append(ml.Transforms.Conversion.MapValueToKey("Class", "Label")).Fit(adult);
        var rows = ml.Data.Cache(prep.Transform(adult));
        using (var gan = ml.Deep().Gan(new GanTrainer.Options { LabelColumnName = "Class", Epochs = 1, Seed = 1, NumberOfThreads = 1 }).Fit(rows))
        {
            Assert.NotEmpty(gan.Spec.OneHotGroups);
            CompareGan(ml, gan, rows, 200);
        }

        // Images: a conditional DCGAN (transposed convolutions, class maps) on 8×8 digits.
        var (train, test) = Fixtures.Digits(ml);
        using var dcgan = ml.Deep().Gan(new GanTrainer.Options
        {
            LabelColumnName = "Label", ImageShape = new ImageShape(1, 8, 8), GeneratorFilters = [16, 8], DiscriminatorFilters = [8, 16], Epochs = 1, Seed = 1, NumberOfThreads = 1,
        }).Fit(train);
        CompareGan(ml, dcgan, test, 100);
    }

    /// <summary>ApplyOnnxModel's columns (a per-row value arrives as a vector of one) …</summary>
    public sealed class OnnxColumns
    {
        [VectorType(1)] public float[] Score { get; set; }
        [VectorType(1)] public float[] Probability { get; set; }
        [VectorType(1)] public bool[] PredictedLabel { get; set; }
    }

    /// <summary>… as the scalar columns ML.NET's binary and regression evaluators read.</summary>
    public sealed class MlNetColumns
    {
        [ColumnName("Score")] public float ScalarScore { get; set; }
        [ColumnName("Probability")] public float ScalarProbability { get; set; }
        [ColumnName("PredictedLabel")] public bool ScalarLabel { get; set; }
    }

    public sealed class OnnxScore
    {
        [VectorType(1)] public float[] Score { get; set; }
    }

    public sealed class MlNetScore
    {
        [ColumnName("Score")] public float ScalarScore { get; set; }
    }

    private static IEstimator<ITransformer> OnnxScoring(MLContext ml, string path, bool binary) => binary
        ? ml.Transforms.ApplyOnnxModel(path).Append(ml.Transforms.CustomMapping<OnnxColumns, MlNetColumns>(
            (i, o) => (o.ScalarScore, o.ScalarProbability, o.ScalarLabel) = (i.Score[0], i.Probability[0], i.PredictedLabel[0]), contractName: null))
        : ml.Transforms.ApplyOnnxModel(path).Append(ml.Transforms.CustomMapping<OnnxScore, MlNetScore>((i, o) => o.ScalarScore = i.Score[0], contractName: null));

    [Fact]
    public void ApplyOnnxModelFeedsMlNetEvaluatorsTheSameMetrics()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = Fixtures.Digits(ml);
        string dir = Fixtures.TempDir();

        // Multiclass: Score [N, K] and PredictedLabel arrive as ML.NET's evaluator reads them.
        using var multi = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 3, Seed = 1, HiddenLayers = [32] }).Fit(train);
        multi.ExportOnnx(Path.Combine(dir, "multi.onnx"));
        var ours = ml.MulticlassClassification.Evaluate(multi.Transform(test));
        var onnx = ml.MulticlassClassification.Evaluate(ml.Transforms.ApplyOnnxModel(Path.Combine(dir, "multi.onnx")).Fit(test).Transform(test));
        output.WriteLine($"multiclass: ours {ours.MicroAccuracy:F4} / log-loss {ours.LogLoss:F4}, ApplyOnnxModel {onnx.MicroAccuracy:F4} / {onnx.LogLoss:F4}");
        Assert.Equal(ours.MicroAccuracy, onnx.MicroAccuracy, 4);
        Assert.Equal(ours.MacroAccuracy, onnx.MacroAccuracy, 4);
        Assert.Equal(ours.LogLoss, onnx.LogLoss, 4);

        var binaryTest = Fixtures.DigitsBinary(ml, "test");
        using var binary = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 3, Seed = 1, HiddenLayers = [32] }).Fit(Fixtures.DigitsBinary(ml, "train"));
        binary.ExportOnnx(Path.Combine(dir, "binary.onnx"));
        var b1 = ml.BinaryClassification.Evaluate(binary.Transform(binaryTest));
        var b2 = ml.BinaryClassification.Evaluate(OnnxScoring(ml, Path.Combine(dir, "binary.onnx"), binary: true).Fit(binaryTest).Transform(binaryTest));
        output.WriteLine($"binary: ours {b1.Accuracy:F4} / AUC {b1.AreaUnderRocCurve:F4}, ApplyOnnxModel {b2.Accuracy:F4} / {b2.AreaUnderRocCurve:F4}");
        Assert.Equal(b1.Accuracy, b2.Accuracy, 4);
        Assert.Equal(b1.AreaUnderRocCurve, b2.AreaUnderRocCurve, 4);
        Assert.Equal(b1.LogLoss, b2.LogLoss, 4);
        Assert.Equal(b1.F1Score, b2.F1Score, 4);

        var regressionTest = Fixtures.DigitsRegression(ml, "test");
        using var regression = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 3, Seed = 1, HiddenLayers = [32] }).Fit(Fixtures.DigitsRegression(ml, "train"));
        regression.ExportOnnx(Path.Combine(dir, "regression.onnx"));
        var r1 = ml.Regression.Evaluate(regression.Transform(regressionTest));
        var r2 = ml.Regression.Evaluate(OnnxScoring(ml, Path.Combine(dir, "regression.onnx"), binary: false).Fit(regressionTest).Transform(regressionTest));
        output.WriteLine($"regression: ours RMSE {r1.RootMeanSquaredError:F4}, ApplyOnnxModel {r2.RootMeanSquaredError:F4}");
        Assert.Equal(r1.RootMeanSquaredError, r2.RootMeanSquaredError, 4);
        Assert.Equal(r1.RSquared, r2.RSquared, 4);
    }

    [Fact]
    public void AWholePipelineFromRawColumnsExportsAsOneModel()
    {
        var ml = new MLContext(seed: 1);
        var split = ml.Data.TrainTestSplit(ml.Data.TakeRows(TestData.Adult(ml), 6000), testFraction: 0.25, seed: 1);
        var chain = TestData.AdultFeaturizer(ml)
            .Append(ml.Transforms.NormalizeMeanVariance("Features"))
            .Append(ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 3, Seed = 1, HiddenLayers = [32] }))
            .Fit(split.TrainSet);
        string path = Path.Combine(Fixtures.TempDir(), "adult.onnx");
        ml.Deep().ExportOnnx(chain, split.TrainSet, path);

        // ONNX Runtime on the raw columns (one row per call, as ML.NET's converter declares its inputs) vs the chain.
        var rows = ml.Data.CreateEnumerable<TestData.AdultRow>(split.TestSet, reuseRowObject: false).Take(300).ToList();
        var expected = chain.Transform(ml.Data.LoadFromEnumerable(rows));
        var scores = expected.GetColumn<float>("Score").ToArray();
        var labels = expected.GetColumn<bool>("PredictedLabel").ToArray();
        using var session = new InferenceSession(path);
        output.WriteLine(string.Join(", ", session.InputMetadata.Select(i => $"{i.Key} {i.Value.ElementType.Name}[{string.Join(",", i.Value.Dimensions)}]")));
        double max = 0;
        for (int r = 0; r < rows.Count; r++)
        {
            var inputs = session.InputMetadata.Select(i =>
            {
                object value = typeof(TestData.AdultRow).GetProperty(i.Key)!.GetValue(rows[r])!;
                return i.Value.ElementType == typeof(string)
                    ? NamedOnnxValue.CreateFromTensor(i.Key, new DenseTensor<string>(new[] { (string)value }, [1, 1]))
                    : NamedOnnxValue.CreateFromTensor(i.Key, new DenseTensor<float>(new[] { Convert.ToSingle(value) }, [1, 1]));
            }).ToList();
            using var results = session.Run(inputs);
            var byName = results.ToDictionary(x => x.Name);
            max = Math.Max(max, Math.Abs(byName["Score"].AsTensor<float>().GetValue(0) - scores[r]));
            Assert.Equal(labels[r], byName["PredictedLabel"].AsTensor<bool>().GetValue(0));
        }
        output.WriteLine($"Adult chain, {rows.Count} raw rows: max |ONNX Runtime − ML.NET + TorchSharp| = {max:G3}");
        Assert.True(max <= 1e-4, $"{max}");
    }

    [Fact]
    public void WeightsReadBackIntoAFreshModuleGiveIdenticalOutputs()
    {
        var ml = new MLContext(seed: 1);
        var (train, test) = Fixtures.Digits(ml);
        using var model = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 2, Seed = 1, HiddenLayers = [32], BatchNorm = true }).Fit(train);
        string path = Path.Combine(Fixtures.TempDir(), "model.onnx");
        model.ExportOnnx(path);

        var proto = global::Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.Equal(17, Assert.Single(proto.OpsetImport).Version);   // opset recorded; LayerNormalization needs 17
        Assert.Equal(8, proto.IrVersion);
        Assert.Contains(proto.MetadataProps, p => p.Key == "label_key_values" && p.Value.Split('\n').Length == 10);
        var initializers = OnnxWeights.Read(path);
        using var fresh = new DeepNetwork(model.Spec);
        fresh.eval();
        var map = OnnxWeights.SameNames(fresh, initializers);
        Assert.Contains("body.dense1.weight", map.Keys);
        Assert.Contains("body.batchnorm1.running_var", map.Keys);
        OnnxWeights.LoadInto(fresh, initializers, map);

        var features = test.GetColumn<float[]>("Features").Take(200).SelectMany(f => f).ToArray();
        using var x = TorchSharp.torch.tensor(features, [200, 64]);
        using var expected = model.Network.Predict(x);
        using var actual = fresh.Predict(x);
        Assert.Equal(expected.data<float>().ToArray(), actual.data<float>().ToArray());
    }

    [Fact]
    public void ATritonModelRepositoryHoldsTheModelAndItsConfig()
    {
        var ml = new MLContext(seed: 1);
        var (train, _) = Fixtures.Digits(ml);
        using var model = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 1, Seed = 1, HiddenLayers = [16] }).Fit(train);
        string repository = Fixtures.TempDir();
        string dir = model.ExportOnnxModelRepository(repository, "digits", maxBatchSize: 32);
        Assert.True(File.Exists(Path.Combine(dir, "1", "model.onnx")));
        string config = File.ReadAllText(Path.Combine(dir, "config.pbtxt"));
        output.WriteLine(config);
        Assert.Contains("name: \"digits\"", config);
        Assert.Contains("platform: \"onnxruntime_onnx\"", config);
        Assert.Contains("max_batch_size: 32", config);
        Assert.Contains("{ name: \"Features\" data_type: TYPE_FP32 dims: [ 64 ] }", config);
        Assert.Contains("{ name: \"Score\" data_type: TYPE_FP32 dims: [ 10 ] }", config);
        Assert.Contains("{ name: \"PredictedLabel\" data_type: TYPE_UINT32 dims: [ 1 ] reshape: { shape: [ ] } }", config);
        Assert.Contains("dynamic_batching", config);
        using var session = new InferenceSession(Path.Combine(dir, "1", "model.onnx"));
        Assert.Equal(["Features"], session.InputMetadata.Keys);
        Assert.Equal(-1, session.InputMetadata["Features"].Dimensions[0]);
    }

    public sealed class Shifted
    {
        [VectorType(64)] public float[] Shift { get; set; }
    }

    [Fact]
    public void BadArgumentsGiveClearErrors()
    {
        var ml = new MLContext(seed: 1);
        var (train, _) = Fixtures.Digits(ml);
        var model = ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 1, Seed = 1, HiddenLayers = [16] }).Fit(train);

        using (var readOnly = new MemoryStream(new byte[16], writable: false))
            Assert.Contains("not writable", Assert.Throws<ArgumentException>(() => model.ExportOnnx(readOnly)).Message);
        Assert.Contains("operator sets 17 to 21", Assert.Throws<ArgumentOutOfRangeException>(() => model.ExportOnnx(new MemoryStream(), new OnnxExportOptions { OpsetVersion = 12 })).Message);

        string notOnnx = Path.Combine(Fixtures.TempDir(), "notes.onnx");
        File.WriteAllText(notOnnx, "These are not the weights you are looking for.");
        var e = Assert.Throws<InvalidDataException>(() => OnnxWeights.Read(notOnnx));
        Assert.Contains("not an ONNX model", e.Message);
        Assert.Contains(notOnnx, e.Message);

        // An upstream ML.NET transform without an ONNX form is named, not skipped.
        var digits = TestData.Digits(ml, "train");
        var chain = ml.Transforms.CustomMapping<TestData.DigitRow, Shifted>((i, o) => o.Shift = i.Pixels.Select(p => p + 1).ToArray(), contractName: null)
            .Append(ml.Transforms.Conversion.MapValueToKey("Label", "Digit"))
            .Append(ml.Deep().Mlp(new MlpTrainer.Options { FeatureColumnName = "Shift", Epochs = 1, Seed = 1, HiddenLayers = [8] })).Fit(digits);
        var unsupported = Assert.Throws<NotSupportedException>(() => ml.Deep().ExportOnnx(chain, digits, Path.Combine(Fixtures.TempDir(), "x.onnx")));
        output.WriteLine(unsupported.Message);
        Assert.Contains("CustomMapping", unsupported.Message);
        Assert.Contains("no ONNX form", unsupported.Message);
        Assert.Contains("holds no deep model", Assert.Throws<ArgumentException>(() => ml.Deep().ExportOnnx(ml.Transforms.Conversion.MapValueToKey("Label", "Digit").Fit(digits), digits, "y.onnx")).Message);

        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.ExportOnnx(new MemoryStream()));
    }
}
