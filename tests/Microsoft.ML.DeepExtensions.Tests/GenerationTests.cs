using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Models;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>Debian package descriptions and summaries, and a small text-to-text generator trained once for the decoding tests.</summary>
public sealed class GenerationFixture
{
    public sealed class Package
    {
        [LoadColumn(1)] public string Section { get; set; } = "";
        [LoadColumn(2)] public string Summary { get; set; } = "";
        [LoadColumn(3)] public string Description { get; set; } = "";
    }

    public static IDataView Packages(MLContext ml, int rows) =>
        ml.Data.TakeRows(ml.Data.LoadFromTextFile<Package>(TestData.Path("debian-packages", "packages.tsv"), '\t', hasHeader: true, allowQuoting: false), rows);

    public GenerationFixture()
    {
        Ml = new MLContext(seed: 1);
        var data = Packages(Ml, 700);
        var split = Ml.Data.TrainTestSplit(data, 0.15, seed: 1);
        (Train, Test) = (split.TrainSet, split.TestSet);
        var options = new TextGenerator.Options
        {
            SourceColumnName = "Description", TargetColumnName = "Summary",
            Generator = new SequenceGeneratorTrainer.Options { Epochs = 2, Seed = 1, EmbeddingSize = 32, HiddenSize = 64, MaxSequenceLength = 32, MaxOutputLength = 12, NumberOfThreads = 1 },
        };
        Model = Ml.Deep().TextGenerator(options).Fit(Train);
        Path = System.IO.Path.Combine(Fixtures.TempDir(), "generator.zip");
        Ml.Model.Save(Model, Train.Schema, Path);
    }

    public MLContext Ml { get; }
    public IDataView Train { get; }
    public IDataView Test { get; }
    public TransformerChain<ITransformer> Model { get; }
    public string Path { get; }

    /// <summary>A fresh copy of the saved model (its decoding can be changed without touching the others).</summary>
    public (ITransformer Model, SequenceGeneratorSpec Spec) Load()
    {
        var model = new MLContext().Deep().LoadModel(Path, out _);
        var generator = ((IEnumerable<ITransformer>)model).OfType<DeepTransformer>().Single();
        return (model, (SequenceGeneratorSpec)generator.Spec);
    }
}

/// <summary>Sequence generation: decoding rules, padding, save/load, one-to-many conditioning, clear errors.</summary>
public class GenerationTests : IClassFixture<GenerationFixture>
{
    private readonly ITestOutputHelper _out;
    private readonly GenerationFixture _f;

    public GenerationTests(GenerationFixture fixture, ITestOutputHelper output) => (_f, _out) = (fixture, output);

    private static List<string> Texts(ITransformer model, IDataView data) => model.Transform(data).GetColumn<string>("GeneratedText").ToList();

    /// <summary>The messages of an exception and everything it wraps (ML.NET's cursors wrap what a mapping throws).</summary>
    private static string Messages(Exception e) => e.InnerException is null ? e.Message : e.Message + " | " + Messages(e.InnerException);

    [Fact]
    public void GeneratesTextThatSavesLoadsAndScoresInAPredictionEngine()
    {
        var texts = Texts(_f.Model, _f.Test);
        var references = _f.Test.GetColumn<string>("Summary").ToList();
        for (int i = 0; i < 5; i++) _out.WriteLine($"{references[i]}  →  {texts[i]}");
        Assert.All(texts, t => Assert.False(string.IsNullOrWhiteSpace(t)));
        Assert.All(texts, t => Assert.DoesNotContain(TextGenerator.EndToken, t));
        // The default decoding never repeats a word pair (NoRepeatNgramSize = 2).
        Assert.All(texts, t => Assert.Equal(Pairs(t).Count, Pairs(t).Distinct().Count()));

        var (loaded, spec) = _f.Load();
        Assert.Equal(texts, Texts(loaded, _f.Test));
        Assert.Equal("Seq2Seq", spec.Family);
        var engine = new MLContext().Model.CreatePredictionEngine<DescriptionOnly, Generated>(loaded);
        var rows = _f.Ml.Data.CreateEnumerable<GenerationFixture.Package>(_f.Test, false).Take(5).ToList();
        for (int i = 0; i < rows.Count; i++)
            Assert.Equal(texts[i], engine.Predict(new DescriptionOnly { Description = rows[i].Description }).GeneratedText);   // no Summary needed to score
    }

    private static List<string> Pairs(string text)
    {
        var w = TextGenerator.Split(text);
        return Enumerable.Range(0, Math.Max(0, w.Length - 1)).Select(i => w[i] + " " + w[i + 1]).ToList();
    }

    public sealed class DescriptionOnly { public string Description { get; set; } = ""; }
    public sealed class Generated { public string GeneratedText { get; set; } = ""; }

    [Fact]
    public void BeamSearchOfWidthOneEqualsGreedy()
    {
        var (greedy, _) = _f.Load();
        var (beam, spec) = _f.Load();
        spec.Decoding = new Decoding { BeamWidth = 1, AlwaysBeam = true };
        var expected = Texts(greedy, _f.Test);
        Assert.Equal(expected, Texts(beam, _f.Test));

        spec.Decoding = new Decoding { BeamWidth = 4 };
        var wide = Texts(beam, _f.Test);
        Assert.All(wide, t => Assert.False(string.IsNullOrWhiteSpace(t)));
        _out.WriteLine($"beam 4 differs from greedy on {wide.Zip(expected).Count(p => p.First != p.Second)} of {wide.Count} rows");
    }

    [Fact]
    public void AFixedSeedGivesTheSameSamples()
    {
        List<string> Sample(int seed)
        {
            var (model, spec) = _f.Load();
            spec.Decoding = new Decoding { Temperature = 1.0, TopK = 20, Seed = seed };
            return Texts(model, _f.Test);
        }
        var first = Sample(3);
        Assert.Equal(first, Sample(3));
        Assert.NotEqual(first, Sample(4));
        Assert.NotEqual(first, Texts(_f.Model, _f.Test));   // sampling is not greedy
    }

    [Fact]
    public void PaddingNeverChangesAnOutput()
    {
        var (model, _) = _f.Load();
        var rows = _f.Ml.Data.CreateEnumerable<GenerationFixture.Package>(_f.Test, false).ToList();
        var shortest = rows.OrderBy(r => r.Description.Length).First();
        var longest = rows.OrderBy(r => r.Description.Length).Last();
        string Alone(GenerationFixture.Package p) => Texts(model, _f.Ml.Data.LoadFromEnumerable([p])).Single();
        var together = Texts(model, _f.Ml.Data.LoadFromEnumerable([shortest, longest]));
        Assert.Equal(Alone(shortest), together[0]);
        Assert.Equal(Alone(longest), together[1]);
    }

    [Fact]
    public void BadInputIsNamedBeforeOrWhileGenerating()
    {
        var ml = _f.Ml;
        var empty = ml.Data.LoadFromEnumerable([new GenerationFixture.Package { Description = "  ", Summary = "x" }]);
        var e1 = Assert.ThrowsAny<Exception>(() => Texts(_f.Model, empty));
        Assert.Contains("source text has no words", Messages(e1));

        var zero = new TextGenerator.Options { SourceColumnName = "Description", TargetColumnName = "Summary", Generator = new() { MaxOutputLength = 0 } };
        var e2 = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Deep().TextGenerator(zero).Fit(_f.Train));
        Assert.Contains("MaxOutputLength", e2.Message);

        var both = new TextGenerator.Options { SourceColumnName = "Description", ConditionColumnName = "Section", TargetColumnName = "Summary" };
        Assert.Contains("exactly one", Assert.Throws<ArgumentException>(() => ml.Deep().TextGenerator(both).Fit(_f.Train)).Message);

        var missing = new TextGenerator.Options { SourceColumnName = "Description", TargetColumnName = "Title" };
        Assert.Contains("'Title'", Assert.Throws<ArgumentException>(() => ml.Deep().TextGenerator(missing).Fit(_f.Train)).Message);

        var beamAndSampling = new Decoding { BeamWidth = 3, Temperature = 0.7 };
        Assert.Throws<ArgumentException>(beamAndSampling.Validate);

        // The trainer itself: a target without the end token is named.
        var tokens = ml.Transforms.Text.TokenizeIntoWords("SourceWords", "Description").Append(ml.Transforms.Conversion.MapValueToKey("SourceKeys", "SourceWords"))
            .Append(ml.Transforms.Text.TokenizeIntoWords("TargetWords", "Summary")).Append(ml.Transforms.Conversion.MapValueToKey("TargetKeys", "TargetWords"));
        var keyed = tokens.Fit(_f.Train).Transform(_f.Train);
        var e3 = Assert.Throws<ArgumentException>(() => ml.Deep().SequenceGenerator(new SequenceGeneratorTrainer.Options { FeatureColumnName = "SourceKeys", LabelColumnName = "TargetKeys", Epochs = 1 }).Fit(keyed));
        Assert.Contains("Label column 'TargetKeys' has no end token '</s>'", e3.Message);
    }

    [Fact]
    public void OneToManyGeneratesForItsConditionAndRejectsAnUnknownOne()
    {
        // SMS messages generated for "spam" use spam's vocabulary far more often than those generated for "ham".
        var ml = new MLContext(seed: 1);
        var sms = ml.Data.TakeRows(TestData.Sms(ml), 2000);
        var options = new TextGenerator.Options
        {
            ConditionColumnName = "Class", TargetColumnName = "Text",
            Generator = new SequenceGeneratorTrainer.Options
            {
                Epochs = 4, Seed = Fixtures.Seed(1), EmbeddingSize = 48, HiddenSize = 128, MaxOutputLength = 20, NumberOfThreads = 1,
                Decoding = new Decoding { Temperature = 0.8, TopK = 30, Seed = 1 },
            },
        };
        var model = ml.Deep().TextGenerator(options).Fit(sms);
        var requests = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 200).Select(i => new ClassOnly { Class = i % 2 == 0 ? "spam" : "ham" }));
        var texts = Texts(model, requests);
        string[] spammy = ["free", "call", "txt", "text", "claim", "prize", "won", "win", "cash", "mobile", "reply", "stop", "urgent", "£", "award", "guaranteed", "service"];
        double Share(int parity) => texts.Where((_, i) => i % 2 == parity).Average(t => TextGenerator.Split(t).Any(w => spammy.Contains(w) || w.All(char.IsDigit) && w.Length >= 4) ? 1.0 : 0.0);
        double spam = Share(0), ham = Share(1);
        _out.WriteLine($"spam-vocabulary share: generated for spam {spam:P0}, for ham {ham:P0}; e.g. spam: \"{texts[0]}\"; ham: \"{texts[1]}\"");
        Assert.True(Fixtures.Quality("GenerationTests.OneToMany: spam - ham share", spam - ham) >= 0.3, $"spam {spam:F2}, ham {ham:F2}");

        var unknown = ml.Data.LoadFromEnumerable([new ClassOnly { Class = "phishing" }]);
        var e = Assert.ThrowsAny<Exception>(() => Texts(model, unknown));
        Assert.Contains("'Class.OneHot'", Messages(e));
        Assert.Contains("not among the training data's classes", Messages(e));
    }

    public sealed class ClassOnly { public string Class { get; set; } = ""; }

    [Theory]
    [InlineData(GeneratorArchitecture.Recurrent, true)]
    [InlineData(GeneratorArchitecture.Transformer, true)]
    [InlineData(GeneratorArchitecture.Transformer, false)]
    public void EachArchitectureCountsItsParametersAndDecodesConsistently(GeneratorArchitecture architecture, bool textSource)
    {
        var ml = new MLContext(seed: 1);
        var options = new TextGenerator.Options
        {
            TargetColumnName = "Summary",
            Generator = new SequenceGeneratorTrainer.Options
            {
                Architecture = architecture, Cell = RecurrentCell.Lstm, Epochs = 1, Seed = 1, EmbeddingSize = 16, HiddenSize = 32, Heads = 2, Layers = 2,
                MaxSequenceLength = 24, MaxOutputLength = 10, NumberOfThreads = 1,
            },
        };
        if (textSource) options.SourceColumnName = "Description"; else options.ConditionColumnName = "Section";
        var model = ml.Deep().TextGenerator(options).Fit(_f.Train);
        var generator = model.OfType<DeepTransformer>().Single();
        _out.WriteLine(generator.Summary().ToString());
        Assert.Equal(generator.Network.Body.parameters().Sum(p => p.numel()), generator.Summary().TotalParameters);

        var spec = (SequenceGeneratorSpec)generator.Spec;
        var greedy = Texts(model, _f.Test);
        spec.Decoding = new Decoding { BeamWidth = 1, AlwaysBeam = true };
        Assert.Equal(greedy, Texts(model, _f.Test));
        spec.Decoding = new Decoding { BeamWidth = 3, LengthPenalty = 0.6 };
        Assert.All(Texts(model, _f.Test), t => Assert.False(string.IsNullOrWhiteSpace(t)));
        if (!textSource) return;
        spec.Decoding = new Decoding();
        var rows = _f.Ml.Data.CreateEnumerable<GenerationFixture.Package>(_f.Test, false).OrderBy(r => r.Description.Length).ToList();
        var together = Texts(model, ml.Data.LoadFromEnumerable([rows[0], rows[^1]]));
        Assert.Equal(Texts(model, ml.Data.LoadFromEnumerable([rows[0]])).Single(), together[0]);
    }
}
