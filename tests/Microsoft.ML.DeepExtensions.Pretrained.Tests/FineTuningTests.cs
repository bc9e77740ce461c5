using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Tests;
using TorchSharp;

namespace Microsoft.ML.DeepExtensions.Pretrained.Tests;

/// <summary>Fine-tuning and featurizing with the pretrained networks on real data (CI-size subsets; full figures in benchmarks/results/pretrained.md).</summary>
public class FineTuningTests(ITestOutputHelper output)
{
    private static readonly ImageShape Fashion = new(1, 28, 28);

    /// <summary>A pretrained model that counts how often its files are opened (a trained model must not need them).</summary>
    private sealed class Counting
    {
        public int Opened;

        public PretrainedModel Wrap(PretrainedModel m) => m.Architecture == PretrainedArchitecture.Bert
            ? new(m.Name, m.Architecture, () => { Opened++; return m.OpenWeights(); }, () => { Opened++; return m.OpenVocabulary(); })
            : new(m.Name, m.Architecture, () => { Opened++; return m.OpenWeights(); }, preprocessing: () => { Opened++; return m.OpenPreprocessing()!; });
    }

    private static Dictionary<string, float[]> Parameters(DeepTransformer model) =>
        model.Network.Body.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().cpu().data<float>().ToArray());

    private static bool Same(float[] a, float[] b) => a.AsSpan().SequenceEqual(b);

    [Fact]
    public void ResNet18_fine_tuned_on_few_images_beats_the_CNN_from_scratch_and_reloads_without_its_files()
    {
        var ml = new MLContext(seed: 1);
        var train = FashionMnist.Load(ml, FashionMnist.FindDirectory("train"), "train", limit: 400);
        var test = FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 1000);
        int seedShift = int.TryParse(Environment.GetEnvironmentVariable("DEEPEXT_TEST_SEED_SHIFT"), out int shift) ? shift : 0;

        var cnn = ml.Deep().Cnn(new CnnTrainer.Options { ImageShape = Fashion, Epochs = 10, Seed = 1 + seedShift }).Fit(train);
        double cnnAccuracy = ml.MulticlassClassification.Evaluate(cnn.Transform(test)).MicroAccuracy;

        var counting = new Counting();
        var options = new PretrainedCnnTrainer.Options
        {
            // The defaults but for a 64-pixel input (a third of the compute); the 0–1 pixel scale is found from the data.
            Model = counting.Wrap(PretrainedModels.ResNet18), ImageShape = Fashion, Resolution = 64, Seed = 1 + seedShift,
        };
        using var resnet = ml.Deep().PretrainedCnn(options).Fit(train);
        int opened = counting.Opened;
        double resnetAccuracy = ml.MulticlassClassification.Evaluate(resnet.Transform(test)).MicroAccuracy;
        Assert.Equal(1f, ((PretrainedCnnSpec)resnet.Spec).PixelMaximum);
        output.WriteLine($"400 training images, 1,000 test: ResNet18 fine-tuned (8 epochs, 64 px) {resnetAccuracy:F4} in {resnet.History.TotalSeconds:F0} s " +
            $"(epochs {string.Join(" / ", resnet.History.Epochs.Select(e => e.Seconds.ToString("F1")))} s), CNN from scratch (10 epochs) {cnnAccuracy:F4} in {cnn.History.TotalSeconds:F0} s");
        Assert.True(resnetAccuracy >= cnnAccuracy + 0.02, $"ResNet18 {resnetAccuracy:F4} vs CNN {cnnAccuracy:F4}");
        Assert.True(resnetAccuracy >= 0.78, $"ResNet18 {resnetAccuracy:F4}");

        // Saved with ML.NET and loaded by a fresh context: the same scores, and the pretrained files are not read again.
        string path = Path.Combine(Path.GetTempPath(), $"resnet-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(resnet, train.Schema, path);
            var fresh = new MLContext();
            var loaded = fresh.Deep().LoadModel(path, out _);
            var before = resnet.Transform(test).GetColumn<float[]>("Score").Take(50).ToArray();
            var after = loaded.Transform(test).GetColumn<float[]>("Score").Take(50).ToArray();
            for (int i = 0; i < before.Length; i++)
                for (int k = 0; k < before[i].Length; k++) Assert.Equal(before[i][k], after[i][k], 5);
            (loaded as IDisposable)?.Dispose();
            Assert.Equal(opened, counting.Opened);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_frozen_backbone_keeps_its_pretrained_weights_while_the_head_learns()
    {
        var ml = new MLContext(seed: 1);
        var train = FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 64);
        var options = new PretrainedCnnTrainer.Options
        {
            Model = PretrainedModels.ResNet18, ImageShape = Fashion, PixelMaximum = 1, Resolution = 32, Epochs = 1, FreezeBackboneEpochs = 1, Seed = 1,
        };
        using var frozen = ml.Deep().PretrainedCnn(options).Fit(train);
        using var untrained = ml.Deep().ImageEmbeddings("E", "Features", Fashion, resolution: 32).Fit(train);
        Assert.Equal(1f, ((PretrainedCnnSpec)untrained.Spec).PixelMaximum);   // found from the 0–1 pixels
        Assert.Equal(512, ((VectorDataViewType)untrained.Transform(train).Schema["E"].Type).Size);
        var after = Parameters(frozen);
        var pretrained = Parameters(untrained);
        int backbone = 0;
        foreach (var (name, values) in after.Where(p => p.Key.StartsWith("backbone.")))
        {
            Assert.True(Same(values, pretrained[name]), $"{name} changed while frozen");
            backbone++;
        }
        Assert.True(backbone > 60);
        Assert.False(Same(after["output.weight"], pretrained["output.weight"]), "the head did not learn");

        // The fine-tuned network exports to ONNX (input preparation, resize and backbone included) and ONNX Runtime agrees.
        string path = Path.Combine(Path.GetTempPath(), $"resnet-{Guid.NewGuid():N}.onnx");
        try
        {
            frozen.ExportOnnx(path);
            var pixels = train.GetColumn<float[]>("Features").Take(8).ToArray();
            var ours = frozen.Transform(ml.Data.TakeRows(train, 8)).GetColumn<float[]>("Score").SelectMany(x => x).ToArray();
            using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(path);
            var input = new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>(pixels.SelectMany(x => x).ToArray(), new[] { 8, 784 });
            using var results = session.Run([Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor("Features", input)]);
            var theirs = results.First(r => r.Name == "Score").AsTensor<float>().ToArray();
            double max = ours.Zip(theirs, (a, b) => Math.Abs(a - b)).Max();
            output.WriteLine($"ONNX export of the fine-tuned ResNet18 (32 px): max |ONNX Runtime − TorchSharp| score difference {max:G3} over 8 images");
            Assert.Equal(ours.Length, theirs.Length);
            Assert.True(max <= 1e-4, $"{max}");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void MiniLM_fine_tuned_on_SMS_text_classifies_spam_and_scores_raw_text_after_reload()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, "Class")
            .Fit(TestData.Sms(ml)).Transform(TestData.Sms(ml));
        var split = ml.Data.TrainTestSplit(data, 0.2, seed: 1);
        var train = ml.Data.TakeRows(split.TrainSet, 1200);
        var test = ml.Data.TakeRows(split.TestSet, 600);
        var counting = new Counting();
        var options = new PretrainedTransformerTrainer.Options
        {
            Model = counting.Wrap(PretrainedModels.MiniLmL6), FeatureColumnName = "Text", Epochs = 1, MaxTokens = 48, TrainableLayers = 2, Seed = 1,
        };
        long tensorsBefore = torch.Tensor.TotalCount;
        using var model = ml.Deep().PretrainedTransformer(options).Fit(train);
        int opened = counting.Opened;
        var metrics = ml.BinaryClassification.Evaluate(model.Transform(test));
        output.WriteLine($"MiniLM (top 2 layers, 1 epoch, 48 tokens) on 1,200 SMS messages: accuracy {metrics.Accuracy:F4}, AUC {metrics.AreaUnderRocCurve:F4} on 600, {model.History.TotalSeconds:F0} s");
        Assert.True(metrics.Accuracy >= 0.95, $"accuracy {metrics.Accuracy:F4}");

        // Only the top 2 of 6 layers (and the head) learned.
        using var pretrained = ml.Deep().TextEmbeddings("E", "Text", 48).Fit(train);
        var after = Parameters(model);
        var before = Parameters(pretrained);
        Assert.True(Same(after["bert.embeddings.word_embeddings.weight"], before["bert.embeddings.word_embeddings.weight"]));
        Assert.True(Same(after["bert.encoder.layer.3.output.dense.weight"], before["bert.encoder.layer.3.output.dense.weight"]));
        Assert.False(Same(after["bert.encoder.layer.5.output.dense.weight"], before["bert.encoder.layer.5.output.dense.weight"]));

        // A PredictionEngine on raw text from the reloaded model, without reading the pretrained files again.
        string path = Path.Combine(Path.GetTempPath(), $"minilm-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext();
            fresh.Deep();   // registers the deep-model loader with the context
            var loaded = fresh.Model.Load(path, out _);
            var engine = fresh.Model.CreatePredictionEngine<SmsInput, SmsPrediction>(loaded);
            Assert.True(engine.Predict(new SmsInput { Text = "WINNER!! You have been selected to receive a £900 prize reward! To claim call 09061701461. Claim code KL341." }).PredictedLabel);
            Assert.False(engine.Predict(new SmsInput { Text = "Ok, I'll see you at home for dinner around 7." }).PredictedLabel);
            (loaded as IDisposable)?.Dispose();
            Assert.Equal(opened, counting.Opened);
        }
        finally
        {
            File.Delete(path);
        }
        output.WriteLine($"tensors: {tensorsBefore} before, {torch.Tensor.TotalCount} after (two models alive)");
    }

    private sealed class SmsInput
    {
        public string Text { get; set; }
    }

    private sealed class SmsPrediction
    {
        public bool PredictedLabel { get; set; }
    }

    [Fact]
    public void Text_embeddings_feed_a_classic_trainer_in_one_pipeline_that_saves_and_reloads()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.TakeRows(TestData.Sms(ml), 400);
        var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", "Class")
            .Append(ml.Deep().TextEmbeddings("Embedding", "Text", maxTokens: 48))
            .AppendCacheCheckpoint(ml)
            .Append(ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(featureColumnName: "Embedding"));
        var model = pipeline.Fit(data);
        var scored = model.Transform(data);
        var embedding = scored.Schema["Embedding"];
        Assert.Equal(384, ((VectorDataViewType)embedding.Type).Size);
        var vectors = scored.GetColumn<float[]>("Embedding").Take(3).ToArray();
        Assert.All(vectors, v => Assert.True(v.Any(x => Math.Abs(x) > 0.01f)));
        var accuracy = ml.MulticlassClassification.Evaluate(scored).MicroAccuracy;
        output.WriteLine($"MiniLM embeddings + SDCA on 400 SMS messages (training accuracy): {accuracy:F4}");
        Assert.True(accuracy > 0.9);

        string path = Path.Combine(Path.GetTempPath(), $"embeddings-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var fresh = new MLContext();
            var loaded = fresh.Deep().LoadModel(path, out _);
            var again = loaded.Transform(data).GetColumn<float[]>("Embedding").Take(3).ToArray();
            for (int i = 0; i < 3; i++) Assert.Equal(vectors[i], again[i]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Bad_input_gets_a_clear_error_before_any_training()
    {
        var ml = new MLContext(seed: 1);
        var images = FashionMnist.Load(ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 20);

        var noModel = Assert.Throws<ArgumentException>(() => ml.Deep().PretrainedCnn(new PretrainedCnnTrainer.Options { ImageShape = Fashion }).Fit(images));
        Assert.Contains("Model", noModel.Message);
        Assert.Contains("PretrainedModels.ResNet18", noModel.Message);

        var wrongKind = Assert.Throws<ArgumentException>(() => ml.Deep().PretrainedTransformer(new PretrainedTransformerTrainer.Options { Model = PretrainedModels.ResNet18 }).Fit(images));
        Assert.Contains("ResNet18", wrongKind.Message);

        var notText = Assert.Throws<ArgumentException>(() => ml.Deep().MiniLm(textColumnName: "Features").Fit(images));
        Assert.Contains("'Features'", notText.Message);
        Assert.Contains("Text column", notText.Message);

        var tooSmall = Assert.Throws<InvalidOperationException>(() => ml.Deep().PretrainedCnn(new PretrainedCnnTrainer.Options
        {
            Model = PretrainedModels.ResNet18, ImageShape = Fashion, Resolution = 16,
        }).Fit(images));
        Assert.Contains("Resolution", tooSmall.Message);

        // In a chain, the schema check names the column before anything is read.
        var schemaError = Assert.Throws<ArgumentException>(() => ml.Transforms.CopyColumns("Pixels", "Features").Append(ml.Deep().TextEmbeddings("E", "Pixels")).Fit(images));
        Assert.Contains("'Pixels'", schemaError.Message);
    }
}
