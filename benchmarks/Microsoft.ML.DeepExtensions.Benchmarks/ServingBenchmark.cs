using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions.Datasets;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>
/// A load test of examples/ScoringService on loopback: the service runs as a child process (so its resident memory is
/// its own), C concurrent clients send R requests of B Fashion-MNIST rows each to the MLP and then the CNN, and a
/// second run mixes in a share of malformed requests. Reported: requests/s, rows/s, p50/p95/p99 latency, errors, and
/// the service's resident memory (VmRSS: native + managed) sampled through the steady phase.
/// </summary>
internal sealed class ServingBenchmark(ServingBenchmark.Settings settings)
{
    public sealed class Settings
    {
        public int Clients { get; set; } = 8;
        public int Requests { get; set; } = 25_000;
        public int Rows { get; set; } = 4;
        public int Warmup { get; set; } = 5_000;
        public double BadShare { get; set; } = 0.1;
        public int TimeLimitSeconds { get; set; } = 300;
        public string Models { get; set; } = "mlp,cnn";
        public string? DataDirectory { get; set; }
        public string? Output { get; set; } = Path.Combine("benchmarks", "results", "serving.md");

        public static Settings Parse(string[] args)
        {
            var s = new Settings();
            Program.ParseOptions(args, "serve", (a, Next) =>
            {
                switch (a)
                {
                    case "--clients": s.Clients = Program.PositiveInt(a, Next()); break;
                    case "--requests": s.Requests = Program.PositiveInt(a, Next()); break;
                    case "--rows": s.Rows = Program.PositiveInt(a, Next()); break;
                    case "--warmup": s.Warmup = Program.PositiveInt(a, Next()); break;
                    case "--bad-percent": s.BadShare = Program.PositiveInt(a, Next()) / 100.0; break;
                    case "--time-limit": s.TimeLimitSeconds = Program.PositiveInt(a, Next()); break;
                    case "--models": s.Models = Next() ?? throw new ArgumentException("Option --models needs mlp, cnn or mlp,cnn."); break;
                    case "--data": s.DataDirectory = Next() ?? throw new ArgumentException("Option --data needs a folder."); break;
                    case "--output":
                        var o = Next() ?? throw new ArgumentException("Option --output needs a file ('-' for none).");
                        s.Output = o == "-" ? null : o;
                        break;
                    default: return false;
                }
                return true;
            });
            return s;
        }
    }

    private sealed record Phase(string Name, int Requests, double Seconds, int Ok, int BadRequest, int Errors, int BadSent,
        double P50, double P95, double P99, long RssStartKb, long RssEndKb, long RssMaxKb, double TrendPercent);

    public int Run()
    {
        var ml = new MLContext(seed: 1);
        var dir = Directory.CreateTempSubdirectory("deepext-serving-").FullName;
        var train = FashionMnist.Load(ml, settings.DataDirectory, "train", 10_000);
        var test = FashionMnist.Load(ml, settings.DataDirectory, "t10k", 1_000);
        var pixels = ml.Data.CreateEnumerable<PixelRow>(test, false).Select(r => r.Features).ToArray();
        var report = new StringBuilder();
        var info = MachineInfo.Collect();
        report.AppendLine("# Scoring service under load (examples/ScoringService)").AppendLine()
            .AppendLine($"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {info.Cpu}, {info.Cores} cores; .NET {info.Runtime}; TorchSharp {info.TorchSharp}, libtorch {info.LibTorch}.")
            .AppendLine($"Loopback, service in a child process, {settings.Clients} clients, {settings.Rows} rows per request, {settings.Warmup} warm-up requests; clients and service share the machine's cores.").AppendLine()
            .AppendLine("| model | phase | requests | rows/s | req/s | p50 ms | p95 ms | p99 ms | 200 | 400 | errors | RSS start MB | RSS end MB | RSS max MB | end vs start | trend |")
            .AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var name in settings.Models.Split(','))
        {
            ITransformer model = name switch
            {
                "mlp" => ml.Deep().Mlp(new MlpTrainer.Options { Epochs = 2, Seed = 1 }).Fit(train),
                "cnn" => ml.Deep().Cnn(new CnnTrainer.Options { Epochs = 1, Seed = 1 }).Fit(train),
                _ => throw new ArgumentException($"Unknown model '{name}'; use mlp or cnn."),
            };
            var path = Path.Combine(dir, $"{name}.zip");
            ml.Deep().SaveModel(model, train.Schema, path);
            (model as IDisposable)?.Dispose();
            using var service = Service.Start(path);
            Console.WriteLine($"{name}: service pid {service.Process.Id} on {service.Address}");
            foreach (var phase in new[] { ("steady", 0.0), ("with malformed", settings.BadShare) })
            {
                var p = Load(service, pixels, phase.Item1, phase.Item2).GetAwaiter().GetResult();
                double growth = 100.0 * (p.RssEndKb - p.RssStartKb) / p.RssStartKb;
                string line = string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {p.Name} | {p.Requests} | {p.Requests * settings.Rows / p.Seconds:F0} | {p.Requests / p.Seconds:F0} | {p.P50:F2} | {p.P95:F2} | {p.P99:F2} | {p.Ok} | {p.BadRequest} (of {p.BadSent} malformed) | {p.Errors} | {p.RssStartKb / 1024.0:F0} | {p.RssEndKb / 1024.0:F0} | {p.RssMaxKb / 1024.0:F0} | {growth:+0.0;-0.0}% | {p.TrendPercent:+0.0;-0.0}% |");
                Console.WriteLine(line);
                report.AppendLine(line);
            }
        }
        report.AppendLine().AppendLine("RSS sampled every 100 ms through the phase, after a warm-up at the same concurrency. Start/end: the median of the first and of the last 10 % of samples; "
            + "trend: the rise of the least-squares line through all samples over the phase, relative to its start (target < 5 %: a leak climbs steadily, the collector's ups and downs do not). "
            + "The malformed run sends a wrong-sized `Features` array in the given share of requests; those must get 400 and every other request 200.");
        Console.WriteLine(report);
        if (settings.Output is { } output) File.WriteAllText(output, report.ToString());
        Directory.Delete(dir, recursive: true);
        return 0;
    }

    private async Task<Phase> Load(Service service, float[][] pixels, string name, double badShare)
    {
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = settings.Clients }) { BaseAddress = new Uri(service.Address) };
        // Pre-built bodies, so the clients spend their CPU on HTTP, not JSON.
        var bodies = Enumerable.Range(0, 64).Select(i => Encoding.UTF8.GetBytes(JsonSerializer.Serialize(
            Enumerable.Range(0, settings.Rows).Select(r => new { Features = pixels[(i * settings.Rows + r) % pixels.Length] })))).ToArray();
        var bad = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new[] { new { Features = pixels[0][..100] } }));
        async Task<HttpStatusCode> Send(byte[] body)
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new("application/json");
            using var response = await http.PostAsync("/predict", content);
            await response.Content.ReadAsByteArrayAsync();
            return response.StatusCode;
        }
        // Warm-up with the phase's concurrency: the service's threads, connection buffers and heap grow to their load first.
        int warm = -1;
        await Task.WhenAll(Enumerable.Range(0, settings.Clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref warm)) < settings.Warmup) await Send(bodies[i % bodies.Length]);
        })));

        var samples = new List<long>();
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested) { lock (samples) samples.Add(service.RssKb()); await Task.Delay(100); }
        });
        var latencies = new double[settings.Requests];
        int next = -1, ok = 0, badRequest = 0, errors = 0, badSent = 0;
        var deadline = Stopwatch.StartNew();
        var clients = Enumerable.Range(0, settings.Clients).Select(c => Task.Run(async () =>
        {
            var rng = new Random(c);
            int i;
            while ((i = Interlocked.Increment(ref next)) < settings.Requests && deadline.Elapsed.TotalSeconds < settings.TimeLimitSeconds)
            {
                bool malformed = rng.NextDouble() < badShare;
                if (malformed) Interlocked.Increment(ref badSent);
                var t = Stopwatch.GetTimestamp();
                HttpStatusCode status;
                try { status = await Send(malformed ? bad : bodies[i % bodies.Length]); }
                catch (HttpRequestException) { status = 0; }
                latencies[i] = Stopwatch.GetElapsedTime(t).TotalMilliseconds;
                if (status == HttpStatusCode.OK && !malformed) Interlocked.Increment(ref ok);
                else if (status == HttpStatusCode.BadRequest && malformed) Interlocked.Increment(ref badRequest);
                else Interlocked.Increment(ref errors);
            }
        })).ToArray();
        await Task.WhenAll(clients);
        double seconds = deadline.Elapsed.TotalSeconds;
        stop.Cancel();
        await sampler;
        int done = Math.Min(settings.Requests, next);
        var sorted = latencies.Take(done).OrderBy(x => x).ToArray();
        double Pct(double q) => sorted[(int)Math.Min(sorted.Length - 1, Math.Floor(q * sorted.Length))];
        long Median(IEnumerable<long> xs) { var a = xs.OrderBy(x => x).ToArray(); return a[a.Length / 2]; }
        int tenth = Math.Max(1, samples.Count / 10);
        return new Phase(name, done, seconds, ok, badRequest, errors, badSent, Pct(0.50), Pct(0.95), Pct(0.99),
            Median(samples.Take(tenth)), Median(samples.TakeLast(tenth)), samples.Max(), Trend(samples));
    }

    // The least-squares line through the samples: its rise over the phase, relative to where it starts (a leak is a
    // steady climb; the garbage collector's ups and downs average out instead of deciding the figure by where they fall).
    private static double Trend(List<long> samples)
    {
        int n = samples.Count;
        if (n < 2) return 0;
        double mx = (n - 1) / 2.0, my = samples.Average();
        double sxy = 0, sxx = 0;
        for (int i = 0; i < n; i++) { sxy += (i - mx) * (samples[i] - my); sxx += (i - mx) * (i - mx); }
        double slope = sxy / sxx, start = my - slope * mx;
        return 100.0 * slope * (n - 1) / start;
    }

    /// <summary>The service in a child process on a free loopback port.</summary>
    private sealed class Service : IDisposable
    {
        public required Process Process { get; init; }
        public required string Address { get; init; }

        public static Service Start(string modelPath)
        {
            int port;
            using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
            var dll = Path.Combine(AppContext.BaseDirectory, "ScoringService.dll");
            var start = new ProcessStartInfo("dotnet", [dll, $"--Model:Path={modelPath}", $"--urls=http://127.0.0.1:{port}", "--Logging:LogLevel:Default=Warning"])
            {
                RedirectStandardOutput = true, RedirectStandardError = true,
            };
            var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the scoring service.");
            process.OutputDataReceived += (_, e) => { if (e.Data is not null) Console.WriteLine($"  [service] {e.Data}"); };
            process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.WriteLine($"  [service] {e.Data}"); };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var service = new Service { Process = process, Address = $"http://127.0.0.1:{port}" };
            using var http = new HttpClient();
            for (var t = Stopwatch.StartNew(); ; Thread.Sleep(200))
            {
                if (process.HasExited) throw new InvalidOperationException($"The scoring service exited with {process.ExitCode}.");
                try { if (http.GetAsync($"{service.Address}/health").GetAwaiter().GetResult().IsSuccessStatusCode) return service; }
                catch (HttpRequestException) { }
                if (t.Elapsed.TotalSeconds > 60) throw new TimeoutException("The scoring service did not answer /health within 60 s.");
            }
        }

        public long RssKb()
        {
            foreach (var line in File.ReadLines($"/proc/{Process.Id}/status"))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            return 0;
        }

        public void Dispose()
        {
            if (!Process.HasExited) { Process.Kill(entireProcessTree: true); Process.WaitForExit(); }
            Process.Dispose();
        }
    }

    private sealed class PixelRow { public float[] Features { get; set; } = []; }
}
