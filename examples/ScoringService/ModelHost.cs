using Microsoft.ML;
using Microsoft.ML.DeepExtensions;

namespace ScoringService;

/// <summary>Where the service finds its model and how many engines it pools.</summary>
public sealed class ScoringOptions
{
    /// <summary>The saved model (<c>mlContext.Model.Save</c> / <c>ml.Deep().SaveModel</c>) or an exported <c>.onnx</c> file: <c>--Model:Path</c> or <c>Model__Path</c>.</summary>
    public string Path { get; set; } = "model.zip";

    /// <summary>Row engines kept for reuse (more may be created under load; the extras are dropped). Default: 2 per core.</summary>
    public int PoolSize { get; set; } = 2 * Environment.ProcessorCount;

    /// <summary>Most rows one request may carry.</summary>
    public int MaxRowsPerRequest { get; set; } = 1000;
}

/// <summary>
/// Holds the model being served and replaces it when its file changes: the new file is loaded (and its SHA-256 hashes
/// verified) beside the old one, then swapped in; requests in flight finish on the model they started with, which is
/// disposed when the last of them is done. A file that fails to load is logged and the old model keeps serving.
/// </summary>
public sealed class ModelHost : IDisposable
{
    private readonly ScoringOptions _options;
    private readonly ILogger<ModelHost> _log;
    private readonly FileSystemWatcher _watcher;
    private readonly Lock _reloadLock = new();
    private readonly Timer _debounce;
    private Served _current;

    /// <summary>Loads the model at <see cref="ScoringOptions.Path"/> (throws if it cannot) and watches its file.</summary>
    public ModelHost(ScoringOptions options, ILogger<ModelHost> log)
    {
        _options = options;
        _log = log;
        var path = System.IO.Path.GetFullPath(options.Path);
        _current = Load(path);
        _debounce = new Timer(_ => Reload(), null, Timeout.Infinite, Timeout.Infinite);
        // A whole-file replace (SaveModel writes a temp file and renames it) arrives as Renamed/Created; an in-place write as Changed.
        _watcher = new FileSystemWatcher(System.IO.Path.GetDirectoryName(path)!, System.IO.Path.GetFileName(path))
        {
            NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.Size,
        };
        FileSystemEventHandler changed = (_, _) => _debounce.Change(250, Timeout.Infinite);
        _watcher.Changed += changed;
        _watcher.Created += changed;
        _watcher.Renamed += (_, _) => _debounce.Change(250, Timeout.Infinite);
        _watcher.EnableRaisingEvents = true;
    }

    /// <summary>Successful reloads since start.</summary>
    public int Reloads { get; private set; }

    /// <summary>The last reload failure, if the most recent attempt failed.</summary>
    public string? LastReloadError { get; private set; }

    /// <summary>Borrows the current model for one request; dispose the lease when done.</summary>
    public Lease Acquire()
    {
        while (true)
        {
            var s = Volatile.Read(ref _current);
            if (s.TryEnter()) return new Lease(s);
        }
    }

    /// <summary>Loads the file again now (the watcher calls this after the file settles).</summary>
    public void Reload()
    {
        lock (_reloadLock)
        {
            var path = _current.Path;
            try
            {
                var next = Load(path);
                var old = Interlocked.Exchange(ref _current, next);
                old.Retire();
                Reloads++;
                LastReloadError = null;
            }
            catch (Exception e) when (e is ModelFileException or IOException or InvalidOperationException or NotSupportedException or UnauthorizedAccessException
                                          or Microsoft.ML.OnnxRuntime.OnnxRuntimeException)
            {
                LastReloadError = e.Message;
                _log.LogError("Reloading {Path} failed; still serving the model loaded at {Loaded:O}: {Error}", path, _current.LoadedUtc, e.Message);
            }
        }
    }

    private Served Load(string path)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        if (string.Equals(System.IO.Path.GetExtension(path), ".onnx", StringComparison.OrdinalIgnoreCase))
        {
            // An exported ONNX file: ONNX Runtime, no libtorch involved in scoring.
            if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
            var onnx = new OnnxScorer(path);
            var servedOnnx = new Served(path, onnx, onnx, DateTime.UtcNow, $"ONNX: {onnx.Description}", null);
            _log.LogInformation("Loaded {Path} in {Ms} ms: {Model}; fields {Fields}", path, watch.ElapsedMilliseconds, servedOnnx.Description,
                string.Join(", ", onnx.Required.Select(c => $"{c.Name} ({c.Type})")));
            return servedOnnx;
        }
        var ml = new MLContext();
        var model = ml.Deep().LoadModel(path, out var schema);
        var scorer = new RowScorer(model, schema, _options.PoolSize);
        var deep = (model is IEnumerable<ITransformer> chain ? chain : [model]).OfType<DeepTransformer>().LastOrDefault();
        var served = new Served(path, model as IDisposable, scorer, DateTime.UtcNow, deep?.ToString() ?? model.GetType().Name, deep?.Versions.ToString());
        _log.LogInformation("Loaded {Path} in {Ms} ms: {Model}; fields {Fields}; {Versions}", path, watch.ElapsedMilliseconds, served.Description,
            string.Join(", ", scorer.Required.Select(c => $"{c.Name} ({c.Type})")), served.Versions ?? "not a Microsoft.ML.DeepExtensions model");
        return served;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _watcher.Dispose();
        _debounce.Dispose();
        _current.Retire();
    }

    /// <summary>One loaded model and its scorer, counted while requests use it.</summary>
    public sealed class Served(string path, IDisposable? resource, IRowScorer scorer, DateTime loadedUtc, string description, string? versions)
    {
        private int _users = 1;   // the host's own reference, dropped by Retire

        /// <summary>The model file.</summary>
        public string Path { get; } = path;
        /// <summary>The scorer over the model.</summary>
        public IRowScorer Scorer { get; } = scorer;
        /// <summary>When it was loaded.</summary>
        public DateTime LoadedUtc { get; } = loadedUtc;
        /// <summary>The deep model inside, or the transformer's type.</summary>
        public string Description { get; } = description;
        /// <summary>Versions and integrity of the deep model, when there is one.</summary>
        public string? Versions { get; } = versions;

        internal bool TryEnter()
        {
            int n;
            do
            {
                n = Volatile.Read(ref _users);
                if (n == 0) return false;   // retired and drained: the caller reads the new current model
            } while (Interlocked.CompareExchange(ref _users, n + 1, n) != n);
            return true;
        }

        internal void Exit()
        {
            if (Interlocked.Decrement(ref _users) == 0) resource?.Dispose();
        }

        internal void Retire() => Exit();
    }

    /// <summary>A request's hold on one model.</summary>
    public readonly struct Lease(Served served) : IDisposable
    {
        /// <summary>The model this request scores with.</summary>
        public Served Model { get; } = served;
        /// <inheritdoc />
        public void Dispose() => Model.Exit();
    }
}
