using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Persistence;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>
/// The core's token-sequence input (shared by the recurrent and transformer families), exercised through a minimal
/// family defined here: the mean of the real tokens' embeddings, then a linear layer.
/// </summary>
public class TokenSequenceTests
{
    [SerializedName("test-mean-embedding")]
    private sealed class MeanEmbeddingSpec : NetworkSpec
    {
        public int Dimension { get; set; } = 16;
        public override string Family => "MeanEmbedding";
        public override nn.Module<Tensor, Tensor> Build() => new MeanEmbedding(((TokenInput)Input).EmbeddingRows, Dimension, OutputSize);
        public override IEnumerable<LayerInfo> Layers() => [];
    }

    [SerializedName("mlp")]
    private sealed class NameThief : NetworkSpec
    {
        public override string Family => "NameThief";
        public override nn.Module<Tensor, Tensor> Build() => throw new NotSupportedException();
        public override IEnumerable<LayerInfo> Layers() => [];
    }

    private sealed class MeanEmbedding : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Embedding embedding;
        private readonly TorchSharp.Modules.Linear output;

        public MeanEmbedding(long rows, long dim, long outputs) : base("MeanEmbedding")
        {
            embedding = nn.Embedding(rows, dim, padding_idx: TokenInput.PaddingId);
            output = nn.Linear(dim, outputs);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            var batch = TokenBatch.From(x);
            var mask = batch.Mask.unsqueeze(-1).to_type(ScalarType.Float32);
            var mean = (embedding.call(batch.Ids) * mask).sum(1) / batch.Lengths.unsqueeze(-1).to_type(ScalarType.Float32);
            return output.call(mean);
        }
    }

    private sealed class MeanEmbeddingTrainer(MLContext ml, MeanEmbeddingTrainer.Options options)
        : DeepTrainerBase<MeanEmbeddingTrainer.Options>(ml, options, nameof(MeanEmbeddingTrainer))
    {
        public sealed class Options : DeepTrainerOptions, ITokenSequenceOptions
        {
            public int MaxSequenceLength { get; set; } = 64;
            public SequenceOverflow SequenceOverflow { get; set; }
        }

        protected override FeatureInput InputFor(DataViewType type, string column) =>
            TokenInput.For(type, column, TrainerOptions.MaxSequenceLength, TrainerOptions.SequenceOverflow) ?? base.InputFor(type, column);

        protected override NetworkSpec CreateSpec(SpecRequest request) =>
            new MeanEmbeddingSpec { InputSize = request.Input.Size, OutputSize = request.OutputSize };
    }

    private sealed class Message
    {
        public string Class { get; set; } = "ham";
        public string Text { get; set; } = "";
    }

    private sealed class Scored
    {
        public float Score { get; set; }
    }

    private static (ITransformer Tokenizer, IDataView Train, IDataView Test) Sms(MLContext ml)
    {
        var split = ml.Data.TrainTestSplit(TestData.Sms(ml), testFraction: 0.2, seed: 3);
        var tokenizer = TestData.SmsTokenizer(ml).Fit(split.TrainSet);
        return (tokenizer, tokenizer.Transform(split.TrainSet), tokenizer.Transform(split.TestSet));
    }

    private static MeanEmbeddingTrainer.Options Quick() =>
        new() { FeatureColumnName = "Tokens", Epochs = 4, BatchSize = 32, LearningRate = 0.01, Seed = Fixtures.Seed(5), ValidationFraction = 0 };

    [Fact]
    public void Token_keys_are_read_as_padded_ids_and_learn_spam()
    {
        var ml = new MLContext(seed: 1);
        var (_, train, test) = Sms(ml);
        var model = new MeanEmbeddingTrainer(ml, Quick()).Fit(train);

        var tokens = (TokenInput)model.Spec.Input;
        var vocabulary = (KeyDataViewType)((VectorDataViewType)train.Schema["Tokens"].Type).ItemType;
        Assert.Equal((int)vocabulary.Count, tokens.VocabularySize);
        Assert.Equal(64, model.Spec.InputSize);
        var metrics = ml.BinaryClassification.Evaluate(model.Transform(test));
        Assert.True(Fixtures.Quality("TokenSequenceTests.Token_keys_are_read_as_padded_ids_and_learn_spam: metrics.Accuracy", metrics.Accuracy) > 0.95, $"accuracy {metrics.Accuracy:F4}");
    }

    [Fact]
    public void Padding_never_changes_a_score()
    {
        var ml = new MLContext(seed: 1);
        var (tokenizer, train, _) = Sms(ml);
        var model = tokenizer.Append(new MeanEmbeddingTrainer(ml, Quick()).Fit(train));
        string shortText = "free prize call now";
        string longText = string.Join(' ', Enumerable.Repeat("meet me at the station later tonight", 8));

        // Alone (one row, no padding) and in a batch beside a longer message (padded to its length): the same score.
        var engine = ml.Model.CreatePredictionEngine<Message, Scored>(model);
        float alone = engine.Predict(new Message { Text = shortText }).Score;
        var batch = ml.Data.LoadFromEnumerable([new Message { Text = longText }, new Message { Text = shortText }]);
        float[] batched = model.Transform(batch).GetColumn<float>("Score").ToArray();
        Assert.Equal(alone, batched[1], 1e-5);
        Assert.NotEqual(batched[0], batched[1]);
    }

    [Fact]
    public void Empty_and_unknown_sequences_read_as_the_unknown_token()
    {
        var ml = new MLContext(seed: 1);
        var (tokenizer, train, _) = Sms(ml);
        var model = tokenizer.Append(new MeanEmbeddingTrainer(ml, Quick()).Fit(train));
        var engine = ml.Model.CreatePredictionEngine<Message, Scored>(model);

        float empty = engine.Predict(new Message { Text = "" }).Score;
        float unknown = engine.Predict(new Message { Text = "qwxzzyv" }).Score;
        float twoUnknown = engine.Predict(new Message { Text = "qwxzzyv vbnmkkq" }).Score;
        Assert.True(float.IsFinite(empty));
        Assert.Equal(unknown, empty, 1e-6);
        Assert.Equal(unknown, twoUnknown, 1e-6);   // out-of-vocabulary words share one id (the mean of two equals one)
    }

    [Fact]
    public void Over_long_sequences_truncate_or_throw_as_configured()
    {
        var ml = new MLContext(seed: 1);
        var (_, train, _) = Sms(ml);
        var options = Quick();
        options.MaxSequenceLength = 5;
        options.SequenceOverflow = SequenceOverflow.Error;
        var error = Assert.Throws<InvalidOperationException>(() => new MeanEmbeddingTrainer(ml, options).Fit(train));
        Assert.Contains("'Tokens'", error.Message);
        Assert.Contains("maximum is 5", error.Message);

        options.SequenceOverflow = SequenceOverflow.Truncate;
        options.Epochs = 1;
        var model = new MeanEmbeddingTrainer(ml, options).Fit(train);
        Assert.Equal(5, model.Spec.InputSize);
    }

    [Fact]
    public void A_float_family_rejects_a_key_vector_naming_the_column()
    {
        var ml = new MLContext(seed: 1);
        var (_, train, _) = Sms(ml);
        var error = Assert.Throws<ArgumentException>(() => ml.Deep().Mlp(featureColumnName: "Tokens").Fit(train));
        Assert.Contains("'Tokens'", error.Message);
        Assert.Contains("vector of keys", error.Message);
    }

    [Fact]
    public void The_token_input_is_stored_in_the_spec()
    {
        NetworkSpec spec = new MlpSpec { InputSize = 20, OutputSize = 1, Input = new TokenInput(900, 20, SequenceOverflow.Error) };
        var json = JsonSerializer.Serialize(spec, ModelManifest.Json);
        Assert.Contains("\"kind\":\"tokens\"", json);
        var back = JsonSerializer.Deserialize<NetworkSpec>(json, ModelManifest.Json)!;
        Assert.Equal(spec.Input, back.Input);
        Assert.Equal(901, ((TokenInput)back.Input).UnknownId);
        // A plain vector input is the default and is not written; it reads back as a vector of InputSize floats.
        var plain = JsonSerializer.Serialize<NetworkSpec>(new MlpSpec { InputSize = 2, OutputSize = 1 }, ModelManifest.Json);
        Assert.DoesNotContain("\"Input\"", plain);
        Assert.Equal(new VectorInput(2), JsonSerializer.Deserialize<NetworkSpec>(plain, ModelManifest.Json)!.Input);
    }

    [Fact]
    public void A_model_file_from_before_the_input_kinds_still_reads_its_tokens()
    {
        const string legacy = """{"family":"mlp","InputSize":20,"OutputSize":1,"InputTokens":{"VocabularySize":900,"MaxLength":20,"Overflow":"Error"}}""";
        var back = JsonSerializer.Deserialize<NetworkSpec>(legacy, ModelManifest.Json)!;
        Assert.Equal(new TokenInput(900, 20, SequenceOverflow.Error), back.Input);
    }

    [Fact]
    public void A_family_of_another_assembly_registers_and_its_models_save_and_load()
    {
        var ml = new MLContext(seed: 1);
        var (_, train, test) = Sms(ml);
        using var model = new MeanEmbeddingTrainer(ml, Quick()).Fit(train);
        NetworkSpec.Register(typeof(MeanEmbeddingSpec));
        NetworkSpec.Register(typeof(MeanEmbeddingSpec));   // again: nothing happens
        var path = Path.Combine(Fixtures.TempDir(), "model.zip");
        ml.Model.Save(model, train.Schema, path);
        var loaded = Assert.IsType<DeepTransformer>(ml.Model.Load(path, out _));
        Assert.IsType<MeanEmbeddingSpec>(loaded.Spec);
        Assert.Equal(model.Transform(test).GetColumn<float>("Score"), loaded.Transform(test).GetColumn<float>("Score"));

        var taken = Assert.Throws<ArgumentException>(() => NetworkSpec.Register(typeof(NameThief)));
        Assert.Contains("'mlp' is taken", taken.Message);
        Assert.Throws<ArgumentException>(() => NetworkSpec.Register(typeof(MeanEmbedding)));   // not a spec
    }
}
