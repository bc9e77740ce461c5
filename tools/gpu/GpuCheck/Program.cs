// GpuCheck: trains the library's default MLP and CNN on Fashion-MNIST and its default LSTM and text transformer on SMS
// spam, on the CPU or on CUDA, and prints per model the median epoch seconds (first epoch dropped) and the test
// accuracy, then one JSON line. See tools/gpu/README.md; tools/gpu/pytorch_reference.py is the same in plain PyTorch.
//
//   GpuCheck --device cpu|cuda [--limit N] [--epochs N] [--data DIR] [--sms FILE] [--families mlp,cnn,lstm,transformer]
//            [--seed N] [--threads N] [--json FILE]
//
// Data: the first --limit rows of the Fashion-MNIST t10k split (the copy embedded in the repository unless --data) and
// the first --limit messages of SMS spam; each is split in order, the first 80 % to train and the rest to test (so
// pytorch_reference.py reads exactly the same rows). Every model uses its trainer's defaults except ValidationFraction
// = 0 (epoch seconds are training only) and, with --epochs, the number of epochs.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.DeepExtensions;
using Microsoft.ML.DeepExtensions.Datasets;
using TorchSharp;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

Settings s;
try
{
    s = Settings.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine(Settings.Usage);
    return 2;
}
return new Check(s).Run();

internal sealed class Settings
{
    public const string Usage =
        "usage: GpuCheck --device cpu|cuda [--limit N] [--epochs N] [--data DIR] [--sms FILE] " +
        "[--families mlp,cnn,lstm,transformer] [--seed N] [--threads N] [--json FILE]";

    public static readonly string[] AllFamilies = ["mlp", "cnn", "lstm", "transformer"];

    public string Device { get; private set; } = "cpu";
    public int? Limit { get; private set; }
    public int? Epochs { get; private set; }
    public string? DataDirectory { get; private set; }
    public string? SmsFile { get; private set; }
    public string[] Families { get; private set; } = AllFamilies;
    public int Seed { get; private set; } = 42;
    public int? Threads { get; private set; }
    public string? JsonFile { get; private set; }

    public static Settings Parse(string[] args)
    {
        var s = new Settings();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {a} needs a value.");
            int Positive() => int.TryParse(Next(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0
                ? v : throw new ArgumentException($"Option {a} needs a positive whole number.");
            switch (a)
            {
                case "--device":
                    s.Device = Next().ToLowerInvariant();
                    if (s.Device is not ("cpu" or "cuda")) throw new ArgumentException("Option --device is cpu or cuda.");
                    break;
                case "--limit": s.Limit = Positive(); break;
                case "--epochs": s.Epochs = Positive(); break;
                case "--data": s.DataDirectory = Next(); break;
                case "--sms": s.SmsFile = Next(); break;
                case "--families":
                    s.Families = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    if (s.Families.Length == 0 || s.Families.Any(f => !AllFamilies.Contains(f)))
                        throw new ArgumentException($"Option --families takes a comma-separated list of {string.Join(", ", AllFamilies)}.");
                    break;
                case "--seed": s.Seed = Positive(); break;
                case "--threads": s.Threads = Positive(); break;
                case "--json": s.JsonFile = Next(); break;
                case "-h" or "--help": throw new ArgumentException("help");
                default: throw new ArgumentException($"Unknown option '{a}'.");
            }
        }
        if (s.Epochs == 1) throw new ArgumentException("Option --epochs needs at least 2 (the first epoch is warm-up and dropped).");
        return s;
    }
}

internal sealed class Check(Settings s)
{
    private sealed record Result(string Family, string Data, long TrainRows, long TestRows, int Epochs, double[] EpochSeconds,
        double MedianEpochSeconds, double FitSeconds, double ScoreSeconds, double Accuracy, double FinalTrainLoss);

    private readonly List<Result> _results = [];
    private readonly List<(string Family, string Error)> _errors = [];

    public int Run()
    {
        var total = Stopwatch.StartNew();
        Console.WriteLine(DeepRuntime.Describe());
        bool cuda;
        int gpus;
        bool cudnn;
        try
        {
            cuda = torch.cuda.is_available();
            gpus = cuda ? torch.cuda.device_count() : 0;
            cudnn = cuda && SafeCudnn();
        }
        catch (Exception e)
        {
            // TorchSharp's native layer did not load (the runtime report above has the loader's message).
            _errors.Add(("native", Describe(e)));
            Console.Error.WriteLine($"error: TorchSharp could not initialise: {e}");
            WriteJson(false, 0, false, null, total.Elapsed.TotalSeconds);
            return 4;
        }
        Console.WriteLine($"torch.cuda.is_available() = {cuda}, torch.cuda.device_count() = {gpus}, cudnn = {cudnn}");

        string? smoke = null;
        if (s.Device == "cuda")
        {
            if (!cuda)
            {
                _errors.Add(("runtime", "--device cuda was asked for but torch.cuda.is_available() is false (see the runtime report above)"));
                Console.Error.WriteLine($"error: {_errors[^1].Error}");
                WriteJson(cuda, gpus, cudnn, null, total.Elapsed.TotalSeconds);
                return 3;
            }
            try
            {
                smoke = CudaSmoke();
                Console.WriteLine($"CUDA smoke: {smoke}");
            }
            catch (Exception e)
            {
                _errors.Add(("cuda-smoke", Describe(e)));
                Console.Error.WriteLine($"error: CUDA smoke failed: {Describe(e)}");
                WriteJson(cuda, gpus, cudnn, null, total.Elapsed.TotalSeconds);
                return 3;
            }
        }

        var device = s.Device == "cuda" ? DeepDevice.Cuda(0) : DeepDevice.Cpu;
        var ml = new MLContext(seed: s.Seed) { FallbackToCpu = false };
        IDataView? fashionTrain = null, fashionTest = null, smsTrain = null, smsTest = null;
        foreach (string family in s.Families)
        {
            try
            {
                Result r;
                if (family is "mlp" or "cnn")
                {
                    if (fashionTrain is null) (fashionTrain, fashionTest) = LoadFashion(ml);
                    r = FitFashion(ml, family, device, fashionTrain, fashionTest!);
                }
                else
                {
                    if (smsTrain is null) (smsTrain, smsTest) = LoadSms(ml);
                    r = FitSms(ml, family, device, smsTrain, smsTest!);
                }
                _results.Add(r);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{r.Family,-12} device={device} train={r.TrainRows} test={r.TestRows} epochs={r.Epochs} " +
                    $"median_epoch_s={r.MedianEpochSeconds:F4} accuracy={r.Accuracy:F4} fit_s={r.FitSeconds:F2} score_s={r.ScoreSeconds:F2} " +
                    $"epoch_s=[{string.Join(",", r.EpochSeconds.Select(x => x.ToString("F4", CultureInfo.InvariantCulture)))}]"));
            }
            catch (Exception e)
            {
                _errors.Add((family, Describe(e)));
                Console.Error.WriteLine($"error: {family} failed: {e}");
            }
        }
        WriteJson(cuda, gpus, cudnn, smoke, total.Elapsed.TotalSeconds);
        return _errors.Count == 0 ? 0 : 1;
    }

    private static bool SafeCudnn()
    {
        try { return torch.cuda.is_cudnn_available(); }
        catch { return false; }
    }

    /// <summary>A matrix product and a convolution on cuda:0, read back and checked against the CPU.</summary>
    private static string CudaSmoke()
    {
        using var scope = torch.NewDisposeScope();
        var dev = new torch.Device(DeviceType.CUDA, 0);
        var a = torch.arange(12, dtype: torch.ScalarType.Float32).reshape(3, 4);
        double cpu = a.matmul(a.t()).sum().item<float>();
        double gpu = a.to(dev).matmul(a.to(dev).t()).sum().item<float>();
        var conv = torch.nn.Conv2d(1, 2, 3).to(dev);
        var y = conv.call(torch.ones(1, 1, 5, 5, device: dev));
        torch.cuda.synchronize();
        if (Math.Abs(cpu - gpu) > 1e-3) throw new InvalidOperationException($"matmul on cuda:0 gave {gpu}, the CPU {cpu}");
        return string.Create(CultureInfo.InvariantCulture, $"matmul ok ({gpu}), conv2d ok (output {string.Join("x", y.shape)} on {y.device})");
    }

    private static string Describe(Exception e)
    {
        while (e is TypeInitializationException or System.Reflection.TargetInvocationException && e.InnerException is not null) e = e.InnerException;
        string message = e.Message.Split('\n', 2)[0].Trim();
        return $"{e.GetType().Name}: {message}";
    }

    private (IDataView Train, IDataView Test) LoadFashion(MLContext ml)
    {
        string dir = s.DataDirectory ?? FashionMnist.FindDirectory("t10k")
            ?? throw new FileNotFoundException("Fashion-MNIST t10k was not found; pass --data DIR (the repository's data/fashion-mnist).");
        var all = FashionMnist.Load(ml, dir, "t10k", s.Limit);
        long n = Rows(all);
        int train = (int)(n * 8 / 10);
        Console.WriteLine($"Fashion-MNIST: {dir} t10k, {n} rows: the first {train} train, the last {n - train} test");
        return (ml.Data.Cache(ml.Data.TakeRows(all, train)), ml.Data.Cache(ml.Data.SkipRows(all, train)));
    }

    private Result FitFashion(MLContext ml, string family, DeepDevice device, IDataView train, IDataView test)
    {
        var watch = Stopwatch.StartNew();
        DeepTransformer model = family == "mlp"
            ? ml.Deep().Mlp(Common(new MlpTrainer.Options(), device)).Fit(train)
            : ml.Deep().Cnn(Common(new CnnTrainer.Options { ImageShape = new ImageShape(1, 28, 28) }, device)).Fit(train);
        double fit = watch.Elapsed.TotalSeconds;
        using var _ = model;
        watch.Restart();
        var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
        return Summarise(family, "fashion-mnist", model, train, test, fit, watch.Elapsed.TotalSeconds, metrics.MicroAccuracy);

    }

    private (IDataView Train, IDataView Test) LoadSms(MLContext ml)
    {
        string file = s.SmsFile ?? new[]
        {
            Path.Combine(AppContext.BaseDirectory, "data", "sms-spam", "SMSSpamCollection"),
            Path.Combine("..", "shared", "data", "sms-spam", "SMSSpamCollection"),
            "/work/shared/data/sms-spam/SMSSpamCollection",
        }.FirstOrDefault(File.Exists) ?? throw new FileNotFoundException("SMS spam was not found; pass --sms FILE (tab-separated ham|spam<TAB>text).");
        var raw = ml.Data.LoadFromTextFile<SmsRow>(file, separatorChar: '\t', hasHeader: false, allowQuoting: false, trimWhitespace: false);
        var all = s.Limit is int limit ? ml.Data.TakeRows(raw, limit) : raw;
        long n = Rows(all);
        int train = (int)(n * 8 / 10);
        var trainRows = ml.Data.TakeRows(all, train);
        var testRows = ml.Data.SkipRows(all, train);
        // Label (Boolean), then lower-case words without punctuation as a vector of keys (vocabulary from the training rows).
        var tokens = ml.Transforms.Conversion.MapValue("Label", new Dictionary<string, bool> { ["ham"] = false, ["spam"] = true }, nameof(SmsRow.Class))
            .Append(ml.Transforms.Text.NormalizeText("Normalized", nameof(SmsRow.Text), keepPunctuations: false))
            .Append(ml.Transforms.Text.TokenizeIntoWords("Tokens", "Normalized"))
            .Append(ml.Transforms.Conversion.MapValueToKey("Tokens"))
            .Fit(trainRows);
        var vocabulary = (((VectorDataViewType)tokens.GetOutputSchema(trainRows.Schema)["Tokens"].Type).ItemType as KeyDataViewType)?.Count;
        Console.WriteLine($"SMS spam: {file}, {n} messages: the first {train} train, the last {n - train} test; vocabulary {vocabulary} words");
        return (ml.Data.Cache(tokens.Transform(trainRows)), ml.Data.Cache(tokens.Transform(testRows)));
    }

    private Result FitSms(MLContext ml, string family, DeepDevice device, IDataView train, IDataView test)
    {
        var watch = Stopwatch.StartNew();
        DeepTransformer model = family == "lstm"
            ? ml.Deep().Lstm(Common(new LstmTrainer.Options { FeatureColumnName = "Tokens" }, device)).Fit(train)
            : ml.Deep().Transformer(Common(new TransformerTrainer.Options { FeatureColumnName = "Tokens" }, device)).Fit(train);
        double fit = watch.Elapsed.TotalSeconds;
        using var _ = model;
        watch.Restart();
        var metrics = ml.BinaryClassification.Evaluate(model.Transform(test));
        return Summarise(family, "sms-spam", model, train, test, fit, watch.Elapsed.TotalSeconds, metrics.Accuracy);

    }

    /// <summary>The settings every model shares: device, seed, threads, epochs, no validation split (epoch seconds are training only).</summary>
    private T Common<T>(T o, DeepDevice device) where T : DeepTrainerOptions
    {
        o.Device = device;
        o.Seed = s.Seed;
        o.ValidationFraction = 0;
        o.NumberOfThreads = s.Threads;
        if (s.Epochs is int e) o.Epochs = e;
        return o;
    }

    private static Result Summarise(string family, string data, DeepTransformer model, IDataView train, IDataView test,
        double fit, double score, double accuracy)
    {
        var epochs = model.History.Epochs;
        double[] seconds = epochs.Select(e => e.Seconds).ToArray();
        return new Result(family, data, Rows(train), Rows(test), epochs.Count, seconds, Median(seconds.Skip(1).ToArray()),
            fit, score, accuracy, epochs.Count > 0 ? epochs[^1].TrainLoss : double.NaN);
    }

    private static long Rows(IDataView data)
    {
        if (data.GetRowCount() is long known) return known;
        long n = 0;
        using var cursor = data.GetRowCursor([]);
        while (cursor.MoveNext()) n++;
        return n;
    }

    /// <summary>The median (of the epochs after the first; of all of them when there is only one).</summary>
    private static double Median(double[] values)
    {
        if (values.Length == 0) return double.NaN;
        var v = values.OrderBy(x => x).ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    private void WriteJson(bool cuda, int gpus, bool cudnn, string? smoke, double totalSeconds)
    {
        var report = DeepRuntime.GetReport();
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("tool", "GpuCheck");
            w.WriteString("device", s.Device);
            w.WriteString("torchsharp", report.TorchSharpVersion);
            w.WriteString("libtorch", report.LibTorchVersion);
            w.WriteString("libtorch_path", report.LibTorchPath);
            w.WriteString("native_fix", report.NativeFixStatus);
            w.WriteBoolean("cuda_available", cuda);
            w.WriteNumber("cuda_devices", gpus);
            w.WriteBoolean("cudnn", cudnn);
            w.WriteString("cuda_smoke", smoke);
            w.WriteNumber("seed", s.Seed);
            if (s.Limit is int limit) w.WriteNumber("limit", limit); else w.WriteNull("limit");
            if (s.Epochs is int ep) w.WriteNumber("epochs", ep); else w.WriteString("epochs", "defaults");
            w.WriteStartArray("results");
            foreach (var r in _results)
            {
                w.WriteStartObject();
                w.WriteString("family", r.Family);
                w.WriteString("data", r.Data);
                w.WriteNumber("train_rows", r.TrainRows);
                w.WriteNumber("test_rows", r.TestRows);
                w.WriteNumber("epochs", r.Epochs);
                w.WriteStartArray("epoch_seconds");
                foreach (double x in r.EpochSeconds) w.WriteNumberValue(Math.Round(x, 5));
                w.WriteEndArray();
                w.WriteNumber("median_epoch_seconds", Math.Round(r.MedianEpochSeconds, 5));
                w.WriteNumber("fit_seconds", Math.Round(r.FitSeconds, 3));
                w.WriteNumber("score_seconds", Math.Round(r.ScoreSeconds, 3));
                w.WriteNumber("accuracy", Math.Round(r.Accuracy, 5));
                if (double.IsFinite(r.FinalTrainLoss)) w.WriteNumber("final_train_loss", Math.Round(r.FinalTrainLoss, 5));
                else w.WriteNull("final_train_loss");
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("errors");
            foreach (var (family, error) in _errors)
            {
                w.WriteStartObject();
                w.WriteString("family", family);
                w.WriteString("error", error);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("total_seconds", Math.Round(totalSeconds, 2));
            w.WriteEndObject();
        }
        string json = Encoding.UTF8.GetString(buffer.ToArray());
        if (s.JsonFile is string file) File.WriteAllText(file, json + Environment.NewLine);
        Console.WriteLine(json);
    }

    private sealed class SmsRow
    {
        [LoadColumn(0)] public string Class { get; set; } = "";
        [LoadColumn(1)] public string Text { get; set; } = "";
    }
}
