using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Training;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The recurrent family (RNN/LSTM/GRU): forecasting, the series windows, spec checks, save/load.</summary>
public class LstmTests
{
    private readonly ITestOutputHelper _out;
    public LstmTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void SeriesWindowsHoldLookBackLabelAndPersistence()
    {
        var ml = new MLContext(seed: 1);
        var temps = ml.Data.CreateEnumerable<SequenceData.TempRow>(SequenceData.SeattleTemps(ml), reuseRowObject: false).Select(r => r.Temp).ToArray();
        var windows = ml.Deep().SeriesWindows(SequenceData.SeattleTemps(ml), "Temp", lookBack: 24, horizon: 3, stride: 5);
        var rows = windows.Preview(maxRows: 3).RowView;
        Assert.Equal((temps.Length - 27) / 5 + 1, windows.GetRowCount());
        var second = rows[1].Values.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(temps.Skip(5).Take(24), ((VBuffer<float>)second["Features"]).DenseValues());
        Assert.Equal(temps.Skip(29).Take(3), ((VBuffer<float>)second["Label"]).DenseValues());
        Assert.Equal(Enumerable.Repeat(temps[28], 3), ((VBuffer<float>)second["LastValue"]).DenseValues());
        var ex = Assert.Throws<ArgumentException>(() => ml.Deep().SeriesWindows(SequenceData.SeattleTemps(ml), "Date", 24));
        Assert.Contains("'Date'", ex.Message);
    }

    [Fact]
    public void ForecastsSeattleTemperatureBetterThanPersistence()
    {
        // Next hour from the previous 24 h; train on the first 80 % of the year, test on the last 20 % (Oct–Dec).
        var ml = new MLContext(seed: 1);
        var (train, test, _) = SequenceData.TempWindows(ml);
        var options = new LstmTrainer.Options { Epochs = 8, HiddenSize = 32, Seed = Fixtures.Seed(1), NumberOfThreads = 1, ValidationFraction = 0 };
        using var model = ml.Deep().Lstm(options).Fit(train);
        var lstm = ml.Regression.Evaluate(model.Transform(test));
        var persistence = ml.Regression.Evaluate(test, "Label", "LastValue");
        double ratio = lstm.RootMeanSquaredError / persistence.RootMeanSquaredError;
        _out.WriteLine($"Seattle next-hour: LSTM RMSE {lstm.RootMeanSquaredError:F3} °F, persistence {persistence.RootMeanSquaredError:F3} °F, ratio {ratio:F3}; " +
                       $"train loss {string.Join(", ", model.History.Epochs.Select(e => e.TrainLoss.ToString("F3")))}");
        Assert.True(Fixtures.Quality("LstmTests.ForecastsSeattleTemperatureBetterThanPersistence: ratio", ratio) <= 0.9, $"LSTM RMSE {lstm.RootMeanSquaredError:F3} is not 10 % below persistence {persistence.RootMeanSquaredError:F3}");
    }

    public sealed class Message
    {
        public string Class { get; set; } = "ham";
        public string Text { get; set; } = "";
    }

    public sealed class SpamPrediction
    {
        public bool PredictedLabel { get; set; }
        public float Score { get; set; }
        public float Probability { get; set; }
    }

    /// <summary>SMS spam, 80/20 split (seeded): raw train/test and the tokenizer (MapValue label, NormalizeText, TokenizeIntoWords, MapValueToKey).</summary>
    private static (IDataView Train, IDataView Test) SmsSplit(MLContext ml)
    {
        var split = ml.Data.TrainTestSplit(TestData.Sms(ml), testFraction: 0.2, seed: 3);
        return (split.TrainSet, split.TestSet);
    }

    /// <summary>Label, then lower-cased words without punctuation ("now!" and "now" are one word) as a Key vector "Tokens".</summary>
    private static IEstimator<ITransformer> SmsTokenizer(MLContext ml) =>
        ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, "Class")
            .Append(ml.Transforms.Text.NormalizeText("Normalized", "Text", keepPunctuations: false))
            .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
            .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"));

    private static LstmTrainer.Options SmsOptions() => new()
    {
        FeatureColumnName = "Tokens", Epochs = 8, EmbeddingSize = 64, HiddenSize = 64, MaxSequenceLength = 80, Dropout = 0.3,
        Seed = Fixtures.Seed(2), NumberOfThreads = 1, ValidationFraction = 0,
    };

    [Fact]
    public void LearnsSmsSpamFromScratchAndRoundTripsOnRawText()
    {
        // The full collection (5,574 messages, 13 % spam), 80/20 split; the LSTM and its embedding are trained from scratch.
        // Eight epochs at a constant rate measured accuracy 0.9805 (spam recall 0.848) — too close to the bar. Balanced class
        // weights lift the spam recall and ten epochs with a cosine-decaying rate end on a settled model. Measured (split
        // seed 3, this test): accuracy 0.9876, spam F1 0.951 (precision 0.971, recall 0.931); the same settings on split
        // seeds 11 and 7: accuracy 0.9800 / F1 0.924 and 0.9828 / 0.936 (a test message is 0.0009 of accuracy).
        var ml = new MLContext(seed: 1);
        var (train, test) = SmsSplit(ml);
        var options = SmsOptions();
        options.Epochs = 10;
        options.BalanceClasses = true;
        options.LearningRateSchedule = LearningRateSchedule.Cosine();
        var pipeline = SmsTokenizer(ml).Append(ml.Deep().Lstm(options));
        var model = pipeline.Fit(train);
        var scored = model.Transform(test);
        var m = ml.BinaryClassification.Evaluate(scored);
        var lstm = model.LastTransformer;
        _out.WriteLine($"SMS spam LSTM: accuracy {m.Accuracy:F4}, spam F1 {m.F1Score:F4} (precision {m.PositivePrecision:F4}, recall {m.PositiveRecall:F4}), AUC {m.AreaUnderRocCurve:F4}; " +
                       $"train loss {string.Join(", ", lstm.History.Epochs.Select(e => e.TrainLoss.ToString("F3")))}");
        Assert.True(Fixtures.Quality("LstmTests.LearnsSmsSpamFromScratchAndRoundTripsOnRawText: m.Accuracy", m.Accuracy) >= 0.97, $"accuracy {m.Accuracy:F4}");   // 3 seeds: min 0.981, median 0.982
        Assert.True(Fixtures.Quality("LstmTests.LearnsSmsSpamFromScratchAndRoundTripsOnRawText: m.F1Score", m.F1Score) >= 0.88, $"spam F1 {m.F1Score:F4}");   // 3 seeds: min 0.924, median 0.930

        // Whole chain (text featurisers + LSTM) saved, loaded in a fresh context, scored on raw text.
        var path = Path.Combine(Path.GetTempPath(), $"lstm-sms-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext(seed: 9);
            fresh.Deep();
            var loaded = fresh.Model.Load(path, out _);
            var engine = fresh.Model.CreatePredictionEngine<Message, SpamPrediction>(loaded);
            var texts = ml.Data.CreateEnumerable<TestData.SmsRow>(test, reuseRowObject: false).Take(40).ToList();
            var original = scored.GetColumn<float>("Score").Take(40).ToArray();
            for (int i = 0; i < texts.Count; i++)
            {
                var p = engine.Predict(new Message { Text = texts[i].Text });
                Assert.Equal(original[i], p.Score, 1e-4);   // one row at a time (no padding) = batched (padded) scores
                Assert.Equal(p.Score > 0, p.PredictedLabel);
            }
            Assert.True(engine.Predict(new Message { Text = "WINNER!! You have won a £1000 prize. Call 09061701461 now to claim" }).PredictedLabel);
            Assert.False(engine.Predict(new Message { Text = "Ok, see you at home later. Do you want pizza?" }).PredictedLabel);
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [InlineData(RecurrentCell.Rnn)]
    [InlineData(RecurrentCell.Gru)]
    public void BidirectionalCellsNeverReadPadding(RecurrentCell cell)
    {
        // One epoch on 1,000 messages is enough to make a network whose scores would move if padding reached it.
        var ml = new MLContext(seed: 1);
        var (train, _) = SmsSplit(ml);
        var options = SmsOptions();
        options.Cell = cell;
        options.Bidirectional = true;
        options.NumLayers = 2;
        options.Dropout = 0.2;
        options.Epochs = 1;
        var model = SmsTokenizer(ml).Append(ml.Deep().Lstm(options)).Fit(ml.Data.TakeRows(train, 1000));
        var engine = ml.Model.CreatePredictionEngine<Message, SpamPrediction>(model);
        string shortText = "free prize call now";
        string longText = string.Join(' ', Enumerable.Repeat("meet me at the station later tonight", 8));
        float alone = engine.Predict(new Message { Text = shortText }).Score;
        var batch = ml.Data.LoadFromEnumerable([new Message { Text = longText }, new Message { Text = shortText }]);
        float[] batched = model.Transform(batch).GetColumn<float>("Score").ToArray();
        Assert.Equal(alone, batched[1], 1e-5);
        Assert.NotEqual(batched[0], batched[1]);
        Assert.Equal(cell == RecurrentCell.Gru ? "GRU" : "RNN", model.LastTransformer.Family);
    }

    [Fact]
    public void BadTokenInputIsHandledAsConfigured()
    {
        var ml = new MLContext(seed: 1);
        var (train, _) = SmsSplit(ml);
        var small = ml.Data.TakeRows(train, 600);
        var options = SmsOptions();
        options.Epochs = 1;
        options.MaxSequenceLength = 6;
        options.SequenceOverflow = SequenceOverflow.Error;
        var tokenizer = SmsTokenizer(ml).Fit(small);
        var error = Assert.Throws<InvalidOperationException>(() => ml.Deep().Lstm(options).Fit(tokenizer.Transform(small)));
        Assert.Contains("'Tokens'", error.Message);

        options.SequenceOverflow = SequenceOverflow.Truncate;
        var model = tokenizer.Append(ml.Deep().Lstm(options).Fit(tokenizer.Transform(small)));
        var engine = ml.Model.CreatePredictionEngine<Message, SpamPrediction>(model);
        // Empty text and words never seen in training: the unknown token, a finite score.
        float empty = engine.Predict(new Message { Text = "" }).Score;
        float unknown = engine.Predict(new Message { Text = "qwxzzyv" }).Score;
        Assert.True(float.IsFinite(empty) && float.IsFinite(unknown));
        Assert.Equal(unknown, empty, 1e-5);
        // Truncation: words after the sixth do not change the score.
        string six = "call me when you get home";
        Assert.Equal(engine.Predict(new Message { Text = six + " tonight" }).Score, engine.Predict(new Message { Text = six + " xyz abc please" }).Score, 1e-5);

        // KeepLast: the most recent six words are read, words before them do not change the score.
        options.SequenceOverflow = SequenceOverflow.KeepLast;
        var recent = tokenizer.Append(ml.Deep().Lstm(options).Fit(tokenizer.Transform(small)));
        var recentEngine = ml.Model.CreatePredictionEngine<Message, SpamPrediction>(recent);
        Assert.Equal(recentEngine.Predict(new Message { Text = "tonight " + six }).Score, recentEngine.Predict(new Message { Text = "please xyz abc " + six }).Score, 1e-5);
    }

    [Fact]
    public void OptionsAndSpecErrorsNameTheSetting()
    {
        var ml = new MLContext(seed: 1);
        var (train, _, _) = SequenceData.TempWindows(ml);
        var wrongShape = new LstmTrainer.Options { SequenceShape = new SequenceShape(5, 5), Epochs = 1 };
        var e1 = Assert.Throws<ArgumentException>(() => ml.Deep().Lstm(wrongShape).Fit(train));
        Assert.Contains("SequenceShape 5×5", e1.Message);
        var tbpttBidir = new LstmTrainer.Options { TruncatedBpttSteps = 6, Bidirectional = true, Epochs = 1 };
        var e2 = Assert.Throws<InvalidOperationException>(() => ml.Deep().Lstm(tbpttBidir).Fit(train));
        Assert.Contains("unidirectional", e2.Message);
        var noLayers = new LstmTrainer.Options { NumLayers = 0 };
        Assert.Throws<ArgumentOutOfRangeException>(() => ml.Deep().Lstm(noLayers).Fit(train));
    }

    [Fact]
    public void SummaryCountsTheGatesParameters()
    {
        // LSTM: 4 gates × H × (F + H + 2 biases) per direction; GRU 3, RNN 1. Checked against TorchSharp's own count.
        foreach (var cell in new[] { RecurrentCell.Lstm, RecurrentCell.Gru, RecurrentCell.Rnn })
        {
            var ml = new MLContext(seed: 1);
            var (train, _, _) = SequenceData.TempWindows(ml, lookBack: 12);
            var options = new LstmTrainer.Options
            {
                Cell = cell, HiddenSize = 8, NumLayers = 2, Bidirectional = true, DenseLayers = [5], Epochs = 1,
                SequenceShape = new SequenceShape(6, 2), ValidationFraction = 0,
            };
            using var model = ml.Deep().Lstm(options).Fit(ml.Data.TakeRows(train, 200));
            long actual = model.Network.Body.parameters().Sum(p => p.numel());
            _out.WriteLine(model.Summary().ToString());
            Assert.Equal(actual, model.Summary().TotalParameters);
        }
    }

    [Fact]
    public void TruncatedBpttTrainsAForecaster()
    {
        var ml = new MLContext(seed: 1);
        var (train, test, _) = SequenceData.TempWindows(ml);
        var options = new LstmTrainer.Options { Epochs = 6, HiddenSize = 32, TruncatedBpttSteps = 8, Cell = RecurrentCell.Gru, Seed = Fixtures.Seed(1), NumberOfThreads = 1, ValidationFraction = 0 };
        using var model = ml.Deep().Lstm(options).Fit(train);
        var gru = ml.Regression.Evaluate(model.Transform(test));
        var persistence = ml.Regression.Evaluate(test, "Label", "LastValue");
        _out.WriteLine($"GRU, truncated BPTT 8 of 24 steps: RMSE {gru.RootMeanSquaredError:F3} vs persistence {persistence.RootMeanSquaredError:F3}");
        Assert.True(Fixtures.Quality("LstmTests.TruncatedBpttTrainsAForecaster: gru.RootMeanSquaredError", gru.RootMeanSquaredError) <= 0.9 * persistence.RootMeanSquaredError, $"RMSE {gru.RootMeanSquaredError:F3}");
    }

    private static double Rmse(IDataView data, string predicted, string label = "Label")
    {
        var p = data.GetColumn<float[]>(predicted).SelectMany(v => v).ToArray();
        var y = data.GetColumn<float[]>(label).SelectMany(v => v).ToArray();
        Assert.Equal(y.Length, p.Length);
        return Math.Sqrt(p.Zip(y, (a, b) => (double)(a - b) * (a - b)).Average());
    }

    [Fact]
    public void ForecastsSixHoursAheadWithAVectorLabel()
    {
        // Many-to-one with a vector label: the next 6 hours from the previous 24 (train: first 80 %, test: last 20 %).
        var ml = new MLContext(seed: 1);
        var windows = ml.Deep().SeriesWindows(SequenceData.SeattleTemps(ml), "Temp", lookBack: 24, horizon: 6);
        long n = windows.GetRowCount()!.Value, cut = (long)(n * 0.8);
        var (train, test) = (ml.Data.TakeRows(windows, cut), ml.Data.SkipRows(windows, cut));
        var options = new LstmTrainer.Options { Epochs = 8, HiddenSize = 32, Seed = Fixtures.Seed(1), NumberOfThreads = 1, ValidationFraction = 0.1 };
        using var model = ml.Deep().Lstm(options).Fit(train);
        var scored = model.Transform(test);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 6), scored.Schema["Score"].Type);
        double lstm = Rmse(scored, "Score"), persistence = Rmse(scored, "LastValue");
        _out.WriteLine($"Seattle 6 h ahead: LSTM RMSE {lstm:F3} °F, persistence {persistence:F3} °F, ratio {lstm / persistence:F3}; " +
                       $"validation RMSE per epoch {string.Join(", ", model.History.Epochs.Select(e => e.ValidationMetric?.ToString("F3")))}");
        Assert.True(Fixtures.Quality("LstmTests.ForecastsSixHoursAheadWithAVectorLabel: lstm", lstm) <= 0.9 * persistence, $"LSTM {lstm:F3} vs persistence {persistence:F3}");
    }

    [Fact]
    public void ManyToManyOutputsOneValuePerStepAndRoundTrips()
    {
        // One output per step: at hour t of the window, the temperature 24 hours after t (the label is the next 24 values).
        var ml = new MLContext(seed: 1);
        var windows = ml.Deep().SeriesWindows(SequenceData.SeattleTemps(ml), "Temp", lookBack: 24, horizon: 24, stride: 3);
        long n = windows.GetRowCount()!.Value, cut = (long)(n * 0.8);
        var (train, test) = (ml.Data.TakeRows(windows, cut), ml.Data.SkipRows(windows, cut));
        var options = new LstmTrainer.Options
        {
            Output = SequenceOutput.ManyToMany, Cell = RecurrentCell.Gru, Epochs = 10, HiddenSize = 32, Seed = 1, NumberOfThreads = 1, ValidationFraction = 0,
        };
        var model = ml.Deep().Lstm(options).Fit(train);
        Assert.Equal(new long[] { 24, 1 }, model.Summary().Layers[^1].OutputShape);
        var scored = model.Transform(test);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 24), scored.Schema["Score"].Type);
        double rnn = Rmse(scored, "Score"), persistence = Rmse(scored, "LastValue");
        _out.WriteLine($"Seattle many-to-many (t → t + 24 h): GRU RMSE {rnn:F3} °F, persistence of the last value {persistence:F3} °F");
        Assert.True(rnn < persistence, $"GRU {rnn:F3} vs persistence {persistence:F3}");

        var path = Path.Combine(Path.GetTempPath(), $"lstm-m2m-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, windows.Schema, path);
            var fresh = new MLContext(seed: 2);
            fresh.Deep();
            var loaded = fresh.Model.Load(path, out _);
            var again = loaded.Transform(test).GetColumn<float[]>("Score").First();
            Assert.Equal(scored.GetColumn<float[]>("Score").First(), again);
        }
        finally
        {
            File.Delete(path);
            model.Dispose();
        }

        var wrong = new LstmTrainer.Options { Output = SequenceOutput.ManyToMany, Epochs = 1 };
        var (scalarTrain, _, _) = SequenceData.TempWindows(ml);
        var e = Assert.Throws<ArgumentException>(() => ml.Deep().Lstm(wrong).Fit(scalarTrain));
        Assert.Contains("one value per step", e.Message);
    }

    public sealed class TaggedText
    {
        public string Words { get; set; } = "";
        public string Tags { get; set; } = "";
    }

    /// <summary>
    /// Truecasing as sequence labelling on real text: the input is an SMS's words lower-cased, the label per word how it
    /// was written — "lower", "Title", "UPPER" (2+ letters, all capitals) or "other" (no letters).
    /// </summary>
    private static List<TaggedText> Truecasing(MLContext ml) =>
        ml.Data.CreateEnumerable<TestData.SmsRow>(TestData.Sms(ml), reuseRowObject: false)
            .Select(m => System.Text.RegularExpressions.Regex.Split(m.Text, "[^A-Za-z0-9]+").Where(w => w.Length > 0).Take(40).ToArray())
            .Where(words => words.Length > 0)
            .Select(words => new TaggedText
            {
                Words = string.Join(' ', words.Select(w => w.ToLowerInvariant())),
                Tags = string.Join(' ', words.Select(w => !w.Any(char.IsLetter) ? "other"
                    : w.Length > 1 && w.Where(char.IsLetter).All(char.IsUpper) ? "UPPER"
                    : char.IsUpper(w[0]) ? "Title" : "lower")),
            }).ToList();

    public sealed class TagPrediction
    {
        public uint[] PredictedLabel { get; set; }
    }

    [Fact]
    public void LabelsEveryTokenWithAKeyVectorLabel()
    {
        var ml = new MLContext(seed: 1);
        var rows = Truecasing(ml);
        var train = ml.Data.LoadFromEnumerable(rows.Take(2500));
        var test = ml.Data.LoadFromEnumerable(rows.Skip(4500));
        var featurizer = ml.Transforms.Text.TokenizeIntoWords("Tokens", nameof(TaggedText.Words))
            .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"))
            .Append(ml.Transforms.Text.TokenizeIntoWords("TagWords", nameof(TaggedText.Tags)))
            .Append(ml.Transforms.Conversion.MapValueToKey("Label", "TagWords"));
        var options = new LstmTrainer.Options
        {
            FeatureColumnName = "Tokens", Output = SequenceOutput.ManyToMany, Bidirectional = true, MaxSequenceLength = 40,
            EmbeddingSize = 32, HiddenSize = 32, Epochs = 8, LearningRate = 5e-3, Seed = 1, NumberOfThreads = 1, ValidationFraction = 0.1,
        };
        var model = featurizer.Append(ml.Deep().Lstm(options)).Fit(train);
        var scored = model.Transform(test);
        Assert.Equal(40, ((VectorDataViewType)scored.Schema["PredictedLabel"].Type).Size);

        // Accuracy over the real words only (the label vector is as long as the message; predictions past it are padding).
        var tagNames = default(VBuffer<ReadOnlyMemory<char>>);
        scored.Schema["PredictedLabel"].GetKeyValues(ref tagNames);
        var names = tagNames.DenseValues().Select(v => v.ToString()).ToArray();
        var labels = scored.GetColumn<uint[]>("Label").ToList();
        var predicted = scored.GetColumn<uint[]>("PredictedLabel").ToList();
        long words = 0, right = 0;
        var counts = new Dictionary<uint, long>();
        for (int i = 0; i < labels.Count; i++)
            for (int t = 0; t < labels[i].Length; t++)
            {
                words++;
                if (predicted[i][t] == labels[i][t]) right++;
                counts[labels[i][t]] = counts.GetValueOrDefault(labels[i][t]) + 1;
            }
        double accuracy = right / (double)words, majority = counts.Values.Max() / (double)words;
        var lstm = model.LastTransformer;
        _out.WriteLine($"Truecasing (BiLSTM, per word): accuracy {accuracy:F4} on {words:N0} test words; majority tag '{names[counts.MaxBy(kv => kv.Value).Key - 1]}' {majority:F4}; " +
                       $"validation accuracy per epoch {string.Join(", ", lstm.History.Epochs.Select(e => e.ValidationMetric?.ToString("F3")))}");
        Assert.Equal(new[] { "lower", "Title", "UPPER", "other" }.OrderBy(n => n), names.OrderBy(n => n));
        // Measured: 0.847 vs the majority tag's 0.751 (2,500 training messages, 8 epochs); the unknown-word rate is high.
        Assert.True(accuracy >= majority + 0.07, $"accuracy {accuracy:F4} vs majority {majority:F4}");

        // One message alone (no padding) and beside a longer one (padded): the same tags.
        var engine = ml.Model.CreatePredictionEngine<TaggedText, TagPrediction>(model);
        var shortText = new TaggedText { Words = "i will call you from london tomorrow", Tags = "lower" };
        var longText = new TaggedText { Words = string.Join(' ', Enumerable.Repeat("ok see you at the station", 5)), Tags = "lower" };
        var alone = engine.Predict(shortText).PredictedLabel.Take(7).ToArray();
        var batched = model.Transform(ml.Data.LoadFromEnumerable([longText, shortText])).GetColumn<uint[]>("PredictedLabel").ToList()[1].Take(7).ToArray();
        Assert.Equal(alone, batched);
        var batchedScores = model.Transform(ml.Data.LoadFromEnumerable([longText, shortText])).GetColumn<float[]>("Score").ToList()[1];
        var aloneScores = model.Transform(ml.Data.LoadFromEnumerable([shortText])).GetColumn<float[]>("Score").Single();
        for (int i = 0; i < 7 * names.Length; i++) Assert.Equal(aloneScores[i], batchedScores[i], 1e-5);

        // Saved and loaded whole chain: the per-step key vector output (with the tag names) comes back.
        var path = Path.Combine(Path.GetTempPath(), $"lstm-tags-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, train.Schema, path);
            var fresh = new MLContext(seed: 3);
            fresh.Deep();
            var loaded = fresh.Model.Load(path, out _);
            var again = fresh.Model.CreatePredictionEngine<TaggedText, TagPrediction>(loaded).Predict(shortText).PredictedLabel;
            Assert.Equal(engine.Predict(shortText).PredictedLabel, again);
            Assert.Equal(new VectorDataViewType(new KeyDataViewType(typeof(uint), 4), 40), loaded.GetOutputSchema(train.Schema)["PredictedLabel"].Type);
        }
        finally { File.Delete(path); }
    }
}
