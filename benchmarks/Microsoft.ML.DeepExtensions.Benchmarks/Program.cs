using System.Globalization;

namespace Microsoft.ML.DeepExtensions.Benchmarks;

/// <summary>Command-line entry: <c>dotnet run -c Release --project benchmarks/Microsoft.ML.DeepExtensions.Benchmarks -- mlp [options]</c>.</summary>
public static class Program
{
    private const string Usage = """
        Microsoft.ML.DeepExtensions benchmarks

        Usage: dotnet run -c Release --project benchmarks/Microsoft.ML.DeepExtensions.Benchmarks -- <benchmark> [options]

        Benchmarks:
          mlp     MlpTrainer inside an ML.NET pipeline vs a raw TorchSharp loop (784-256-128-10, Adam, Fashion-MNIST)
          cnn     CnnTrainer (default network) inside an ML.NET pipeline vs a raw TorchSharp loop on the same network
          epochs  seconds per epoch of every family on a fixed slice (run it against two builds to compare them)
          stream  the MLP trained from .idv and .csv files larger than its cache budget, streamed vs cached: memory, accuracy, time
          serve   examples/ScoringService under load on loopback (MLP and CNN): throughput, latency, errors, memory
          gan     GanTrainer quality: Fashion-MNIST conditional DCGAN judged by a CNN (+ Fréchet distance), Adult
                  train-on-synthetic/test-on-real, optdigits anomaly AUC
          pretrained  transfer learning: fine-tuned MiniLM vs FeaturizeText + SDCA on the Debian descriptions; fine-tuned
                  ResNet18 vs the CNN from scratch on 1,000 Fashion-MNIST images (frozen embeddings + SDCA for both)
          generation  sequence generation: Debian summaries from descriptions (ROUGE-L vs the first N words) and SMS
                  messages for a class (judged by our SMS classifier; copies of training messages)
          vision  images from scratch on the full Fashion-MNIST: default CNN vs the CNN HighAccuracy preset vs the
                  vision transformer (accuracy, seconds per epoch)
          onnx    scoring with TorchSharp vs the exported model in ONNX Runtime (MLP and CNN): single-row latency,
                  batch throughput, label agreement; or --export-model PATH to write the MLP's .onnx file only

        Options (onnx):
          --limit N           Fashion-MNIST training images (default 6,000; the train split, else the embedded t10k)
          --rows N            t10k rows timed per side and round (default 2,000) after --warmup N untimed ones (default 200)
          --rounds N          alternating rounds (default 5); --batch N ORT batch rows (default 256)
          --threads N         torch intra-op threads = ORT IntraOpNumThreads (default 1)
          --models LIST       mlp,cnn (default both); --data DIR (Fashion-MNIST)
          --export-model PATH train the default MLP (2 epochs) on the slice, write PATH (.onnx) and stop
          --output FILE       markdown report (default benchmarks/results/onnx.md; '-' for none)

        Options (generation):
          --part P            summaries, sms or all (default all); --epochs N (default 6)
          --transformer       also the transformer architecture on the summaries
          --messages N        SMS messages generated, half per class (default 1,000); --limit N rows of each data set
          --threads N, --shared-data DIR (default ../shared/data)
          --output FILE       markdown report (default benchmarks/results/generation.md; '-' for none)

        Options (vision):
          --models LIST       cnn,cnn-preset,vit (default all three)
          --cnn-epochs N      default CNN epochs (default 5); --preset-epochs N (default 15), --vit-epochs N (default 15)
          --limit N           training images (default all 60,000); --threads N, --data DIR
          --output FILE       markdown report (default benchmarks/results/vision-fashion-mnist.md; '-' for none)

        Options (pretrained):
          --part P            text (Debian descriptions), sms, images or all (default all)
          --epochs N          MiniLM fine-tuning epochs (default 2); --max-tokens N word pieces per text (default 64)
          --limit N           Fashion-MNIST training images (default 1,000); --image-epochs N (default 8)
          --resolution N      ResNet18 input size (default 112); --threads N, --data DIR, --shared-data DIR
          --output FILE       markdown report (default benchmarks/results/pretrained.md; '-' for none)

        Options (gan):
          --part P            fashion, adult, digits or all (default all)
          --epochs N          GAN epochs on Fashion-MNIST (default 10; Adult uses at least 15, optdigits 30)
          --cnn-epochs N      epochs of the judging CNN (default 5)
          --limit N           use only the first N Fashion-MNIST training images
          --seed N, --threads N, --data DIR (Fashion-MNIST), --shared-data DIR (default ../shared/data)
          --output FILE       markdown report (default benchmarks/results/gan.md; '-' for none)

        Options (stream):
          --limit N           training images (default all 60,000); --budget MB for the streamed run (default 4)
          --epochs N          epochs per run (default 4; the first is warm-up for the time ratio); --threads N, --data DIR
          --output FILE       markdown report (default benchmarks/results/streaming.md; '-' for none)

        Options (serve):
          --clients N         concurrent clients (default 8)
          --requests N        requests per phase (default 25,000) of --rows N rows each (default 4)
          --warmup N          untimed requests first, at the same concurrency (default 5,000)
          --bad-percent N     malformed share of the second phase (default 10)
          --time-limit S      stop a phase after S seconds (default 300)
          --models LIST       mlp,cnn (default both); --data DIR (Fashion-MNIST)
          --output FILE       markdown report (default benchmarks/results/serving.md; '-' for none)

        Options (epochs):
          --epochs N          epochs per fit (default 4; the first is warm-up, the median of the rest is reported)
          --limit N           Fashion-MNIST training images (default 4000); the transformer reads all of SMS spam
          --families LIST     comma-separated, of perceptron,mlp,cnn,lstm,transformer,ft-transformer,gan (default all)
          --seed N, --threads N, --data DIR (Fashion-MNIST), --shared-data DIR (default ../shared/data)
          --output FILE       append one tab-separated line per family (family, median seconds, all seconds)

        Options (mlp):
          --epochs N          epochs per run (default 3; the first epoch of every run is warm-up and is dropped)
          --rounds N          alternating raw/pipeline rounds (default 4; order alternates raw,pipeline / pipeline,raw)
          --limit N           use only the first N training images (default: all 60,000)
          --test-limit N      use only the first N test images (default: all 10,000)
          --batch N           batch size (default 128)
          --seed N            seed for weights and shuffling (default 42)
          --threads N         torch intra-op threads (default: TorchSharp's default)
          --no-standardize    turn off MlpTrainer's feature standardisation (and the raw loop's matching pre-scaling)
          --no-warmup         skip the untimed warm-up of both sides on a small slice
          --data DIR          Fashion-MNIST folder (default: $FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist)
          --output FILE       markdown report (default: benchmarks/results/mlp-fashion-mnist.md; '-' for none)
        """;

    /// <summary>Runs the named benchmark; returns 0 when it ran (whether or not the target was met: timings are noisy), 2 on bad usage.</summary>
    public static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        try
        {
            switch (args[0])
            {
                case "mlp":
                case "cnn":
                    var settings = MlpBenchmark.Settings.Parse(args[1..]);
                    settings.Model = args[0];
                    return new MlpBenchmark(settings).Run();
                case "epochs":
                    return new EpochBenchmark(EpochBenchmark.Settings.Parse(args[1..])).Run();
                case "gan":
                    return new GanBenchmark(GanBenchmark.Settings.Parse(args[1..])).Run();
                case "stream":
                    return new StreamingBenchmark(StreamingBenchmark.Settings.Parse(args[1..])).Run();
                case "serve":
                    return new ServingBenchmark(ServingBenchmark.Settings.Parse(args[1..])).Run();
                case "onnx":
                    return new OnnxBenchmark(OnnxBenchmark.Settings.Parse(args[1..])).Run();
                case "generation":
                    return new GenerationBenchmark(GenerationBenchmark.Settings.Parse(args[1..])).Run();
                case "vision":
                    return new VisionBenchmark(VisionBenchmark.Settings.Parse(args[1..])).Run();
                case "pretrained":
                    return new PretrainedBenchmark(PretrainedBenchmark.Settings.Parse(args[1..])).Run();
                default:
                    Console.Error.WriteLine($"Unknown benchmark '{args[0]}'.");
                    Console.Error.WriteLine(Usage);
                    return 2;
            }
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine(Usage);
            return 2;
        }
    }

    /// <summary>
    /// Reads <c>--option [value]</c> pairs: <paramref name="apply"/> gets each option and a function that takes its value,
    /// and returns false for an option it does not know (named in the error, with <paramref name="benchmark"/>).
    /// </summary>
    internal static void ParseOptions(string[] args, string benchmark, Func<string, Func<string?>, bool> apply)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string option = args[i];
            if (!apply(option, () => i + 1 < args.Length ? args[++i] : null))
                throw new ArgumentException($"Unknown option '{option}' for the {benchmark} benchmark.");
        }
    }

    /// <summary>Parses a positive integer option value.</summary>
    internal static int PositiveInt(string option, string? value)
    {
        if (value is null || !int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) || n < 1)
            throw new ArgumentException($"Option {option} needs a positive integer; got '{value}'.");
        return n;
    }
}
