using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML;
using Microsoft.ML.DeepExtensions;
using Microsoft.ML.DeepExtensions.Datasets;

namespace ScoringService.Tests;

/// <summary>
/// The scoring service on loopback with a Fashion-MNIST MLP: scores equal <c>Transform</c>'s, bad requests get 400 naming
/// the field, concurrent clients are served by pooled engines, and replacing the model file swaps the model without a
/// failed request.
/// </summary>
public sealed class ServiceTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly MLContext _ml = new(seed: 1);
    private string _dir = "";
    private string _path = "";
    private IDataView _test = null!;
    private float[][] _pixels = [];
    private ITransformer _model = null!;
    private WebApplication _app = null!;
    private HttpClient _http = null!;

    private ITransformer Train(int seed, int epochs, IDataView train) =>
        _ml.Deep().Mlp(new MlpTrainer.Options { Epochs = epochs, Seed = seed, HiddenLayers = [64], ValidationFraction = 0 }).Fit(train);

    public async Task InitializeAsync()
    {
        _dir = Path.Combine(Path.GetTempPath(), "deepext-service-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        var data = FashionMnist.Load(_ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 2500);
        var split = _ml.Data.TrainTestSplit(data, 0.2, seed: 1);
        _test = split.TestSet;
        _pixels = _ml.Data.CreateEnumerable<PixelRow>(_test, false).Select(r => r.Features).ToArray();
        _model = Train(1, 1, split.TrainSet);
        _path = Path.Combine(_dir, "model.zip");
        _ml.Deep().SaveModel(_model, data.Schema, _path);
        _app = ScoringApp.Create([$"--Model:Path={_path}", "--urls=http://127.0.0.1:0", "--Logging:LogLevel:Default=Warning"]);
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        _http = new HttpClient { BaseAddress = new Uri(address) };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _app.DisposeAsync();
        (_model as IDisposable)?.Dispose();
    }

    /// <summary>What <c>Transform</c> gives for the test rows: the softmax vector and the class name.</summary>
    private List<(float[] Score, string Label)> Expected(ITransformer model) =>
        _ml.Data.CreateEnumerable<ScoreRow>(model.Transform(_test), false)
            .Select(r => (r.Score, FashionMnist.ClassNames[Array.IndexOf(r.Score, r.Score.Max())])).ToList();

    private static string Rows(IEnumerable<float[]> pixels) => JsonSerializer.Serialize(pixels.Select(p => new { Features = p }));

    private async Task<(HttpStatusCode Status, JsonElement Body)> Post(string json)
    {
        using var response = await _http.PostAsync("/predict", new StringContent(json, Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (response.StatusCode, body);
    }

    private static void AssertMatches(JsonElement predictions, IReadOnlyList<(float[] Score, string Label)> expected, int offset = 0)
    {
        int i = 0;
        foreach (var p in predictions.EnumerateArray())
        {
            var (score, label) = expected[offset + i++];
            var got = p.GetProperty("score").EnumerateArray().Select(e => e.GetSingle()).ToArray();
            Assert.Equal(score.Length, got.Length);
            for (int k = 0; k < score.Length; k++) Assert.Equal(score[k], got[k], 1e-6f);
            Assert.Equal(label, p.GetProperty("predictedLabel").GetString());
        }
        Assert.True(i > 0);
    }

    [Fact]
    public async Task An_exported_onnx_file_is_served_with_the_same_scores_and_the_same_400s()
    {
        string onnx = Path.Combine(_dir, "model.onnx");
        ((DeepTransformer)_model).ExportOnnx(onnx);
        await using var app = ScoringApp.Create([$"--Model:Path={onnx}", "--urls=http://127.0.0.1:0", "--Logging:LogLevel:Default=Warning"]);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single()) };

        var health = await http.GetFromJsonAsync<JsonElement>("/health");
        Assert.StartsWith("ONNX:", health.GetProperty("description").GetString());
        var expected = Expected(_model);
        using (var response = await http.PostAsync("/predict", new StringContent(Rows(_pixels.Take(40)), Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = await response.Content.ReadFromJsonAsync<JsonElement>();
            // ONNX Runtime's kernels differ from libtorch's in the last bits: scores within 1e-5, labels identical.
            int i = 0;
            foreach (var p in body.GetProperty("predictions").EnumerateArray())
            {
                var (score, label) = expected[i++];
                var got = p.GetProperty("score").EnumerateArray().Select(e => e.GetSingle()).ToArray();
                for (int k = 0; k < score.Length; k++) Assert.Equal(score[k], got[k], 1e-5f);
                Assert.Equal(label, p.GetProperty("predictedLabel").GetString());
            }
            Assert.Equal(40, i);
        }
        using (var bad = await http.PostAsync("/predict", new StringContent(JsonSerializer.Serialize(new { Features = new float[10] }), Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("'Features' must be an array of 784 numbers", await bad.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task Batches_and_single_rows_score_exactly_like_Transform()
    {
        var expected = Expected(_model);
        var (status, body) = await Post(Rows(_pixels.Take(50)));
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(50, body.GetProperty("predictions").GetArrayLength());
        AssertMatches(body.GetProperty("predictions"), expected);

        (status, body) = await Post(JsonSerializer.Serialize(new { Features = _pixels[7] }));   // one row, no array
        Assert.Equal(HttpStatusCode.OK, status);
        AssertMatches(body.GetProperty("predictions"), expected, offset: 7);

        var health = await _http.GetFromJsonAsync<JsonElement>("/health");
        output.WriteLine(health.ToString());
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.Equal("Features", health.GetProperty("fields")[0].GetProperty("name").GetString());
        Assert.Contains("verified on load", health.GetProperty("versions").GetString());
    }

    [Theory]
    [InlineData("{\"Pixels\": [1, 2]}", "field 'Features' is missing")]
    [InlineData("{\"Features\": [0.1, 0.2, 0.3]}", "field 'Features' must be an array of 784 numbers; got an array of 3")]
    [InlineData("{\"Features\": \"a photo\"}", "field 'Features' must be an array of 784 numbers; got String")]
    [InlineData("[{\"Features\": null}]", "field 'Features' is missing")]
    [InlineData("[]", "no rows")]
    [InlineData("[42]", "a row must be a JSON object")]
    [InlineData("this is not json", "not JSON")]
    [InlineData("\"text\"", "the body must be a row")]
    public async Task Malformed_requests_get_400_naming_what_is_wrong(string body, string expected)
    {
        var (status, problem) = await Post(body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(expected, problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task A_bad_value_inside_a_batch_names_its_row_and_index_and_good_requests_still_succeed()
    {
        var rows = _pixels.Take(3).Select(p => (object)new { Features = p }).ToList();
        var bad = _pixels[3].Select(v => (object)v).ToArray();
        bad[5] = "x";
        rows.Add(new { Features = bad });
        var (status, problem) = await Post(JsonSerializer.Serialize(rows));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("row 3: field 'Features'[5] must be a number", problem.GetProperty("detail").GetString());

        var (ok, _) = await Post(Rows(_pixels.Take(3)));
        Assert.Equal(HttpStatusCode.OK, ok);
    }

    [Fact]
    public async Task Concurrent_clients_share_the_pooled_engines_and_all_get_the_right_scores()
    {
        var expected = Expected(_model);
        var tasks = Enumerable.Range(0, 8).Select(async client =>
        {
            for (int r = 0; r < 25; r++)
            {
                int start = (client * 25 + r) * 2 % (_pixels.Length - 4);
                var (status, body) = await Post(Rows(_pixels.Skip(start).Take(4)));
                Assert.Equal(HttpStatusCode.OK, status);
                AssertMatches(body.GetProperty("predictions"), expected, start);
            }
        });
        await Task.WhenAll(tasks);
    }

    [Fact]
    public async Task Replacing_the_model_file_swaps_models_without_a_failed_request_and_a_bad_file_keeps_the_old_one()
    {
        var data = FashionMnist.Load(_ml, FashionMnist.FindDirectory("t10k"), "t10k", limit: 2500);
        using var second = (IDisposable)Train(2, 2, _ml.Data.TrainTestSplit(data, 0.2, seed: 1).TrainSet);
        var expected = Expected((ITransformer)second);
        var failures = new List<HttpStatusCode>();
        using var stop = new CancellationTokenSource();
        int sent = 0;
        var load = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var (status, _) = await Post(Rows(_pixels.Take(8)));
                sent++;
                if (status != HttpStatusCode.OK) lock (failures) failures.Add(status);
            }
        });
        _ml.Deep().SaveModel((ITransformer)second, data.Schema, _path);
        await WaitFor(h => h.GetProperty("reloads").GetInt32() == 1);
        await Task.Delay(200);
        stop.Cancel();
        await load;
        output.WriteLine($"{sent} requests during the reload, {failures.Count} failed");
        Assert.Empty(failures);
        Assert.True(sent > 5);
        var (_, body) = await Post(Rows(_pixels.Take(20)));
        AssertMatches(body.GetProperty("predictions"), expected);

        // A file that is not a model: logged, reported in /health, and the loaded model keeps serving.
        var junk = Path.Combine(_dir, "junk.tmp");
        File.WriteAllText(junk, "not a model");
        File.Move(junk, _path, overwrite: true);
        var health = await WaitFor(h => h.GetProperty("lastReloadError").ValueKind == JsonValueKind.String);
        Assert.Contains("not a readable zip archive", health.GetProperty("lastReloadError").GetString());
        (_, body) = await Post(Rows(_pixels.Take(20)));
        AssertMatches(body.GetProperty("predictions"), expected);
    }

    [Fact]
    public void A_service_started_on_an_altered_model_file_fails_at_start_naming_it()
    {
        var altered = Path.Combine(_dir, "altered.zip");
        var bytes = File.ReadAllBytes(_path);
        File.WriteAllBytes(altered, bytes[..(bytes.Length - 10)]);
        var e = Assert.Throws<ModelFileException>(() => ScoringApp.Create([$"--Model:Path={altered}"]));
        Assert.Contains(altered, e.Message);
    }

    private async Task<JsonElement> WaitFor(Func<JsonElement, bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var h = await _http.GetFromJsonAsync<JsonElement>("/health");
            if (condition(h)) return h;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"/health never reached the expected state: {h}");
            await Task.Delay(100);
        }
    }

    private sealed class PixelRow { public float[] Features { get; set; } = []; }
    private sealed class ScoreRow { public float[] Score { get; set; } = []; }
}
