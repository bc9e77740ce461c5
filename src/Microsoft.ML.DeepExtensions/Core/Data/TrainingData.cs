using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Data;

/// <summary>
/// Training (or validation) rows of an <see cref="IDataView"/> as batches of tensors — one tensor per batch, never per row.
/// One pass over the cursor validates every row and computes feature/target statistics and class counts. Data that fits
/// the memory budget is then held as two tensors and batches are gathered with a seeded permutation each epoch; larger
/// data is streamed from a new cursor each epoch through a seeded shuffle buffer. Without a label column (unsupervised
/// families) every row's label reads as 0.
/// </summary>
internal sealed class TrainingData : IDisposable
{
    private readonly TrainingRequest _request;
    private Tensor? _x;
    private Tensor? _y;

    public int FeatureSize => _request.Input.Size;
    public long Count { get; private set; }
    public bool IsCached => _x is not null;
    public float[] FeatureMean { get; private set; } = [];
    public float[] FeatureStd { get; private set; } = [];
    public float[] FeatureMin { get; private set; } = [];
    public float[] FeatureMax { get; private set; } = [];
    public float TargetMean { get; private set; }
    public float TargetStd { get; private set; } = 1;
    /// <summary>Rows per class (classification).</summary>
    public long[] ClassCounts { get; private set; } = [];

    private TrainingData(TrainingRequest request) => _request = request;

    /// <summary>
    /// Reads, validates and (budget permitting) caches the rows the request's filter keeps. Without a label the features
    /// alone are read. <see cref="FeatureMean"/>/<see cref="FeatureStd"/> are per slot as the input computes them (for a
    /// variable-length sequence: each step feature over real steps only).
    /// </summary>
    public static TrainingData Load(TrainingRequest request)
    {
        var set = new TrainingData(request);
        set.FirstPass();
        return set;
    }

    private void FirstPass()
    {
        var q = _request;
        int d = FeatureSize;
        var stats = new RunningStatistics(q.Input.StatisticsCount, d);
        double tMean = 0, tM2 = 0;
        var classCounts = new long[Math.Max(q.Label?.ClassCount ?? 0, 0)];
        var row = new float[d];
        var xs = new GrowingBuffer(d, q.BudgetBytes);
        int w = q.Label?.Width ?? 1;
        var ys = new GrowingBuffer(w, long.MaxValue);
        var y = new float[w];
        long n = 0, targets = 0;
        var heap = new HeapBound(q.BudgetBytes, collectNow: false);

        using (var cursor = q.Data.GetRowCursor(FeatureReader.Needed(q.Data.Schema, q.FeatureColumn, q.LabelColumn)))
        {
            var reader = new FeatureReader(cursor, q.FeatureColumn, q.Input, q.LabelColumn, q.Label);
            long r = -1;
            while (cursor.MoveNext())
            {
                r++;
                if (!q.Filter.Keep(r)) continue;
                if ((r & 1023) == 0)
                {
                    q.Token.ThrowIfCancellationRequested();
                    if (xs.Overflowed) heap.Check();   // streamed from now on: the loader's garbage is bounded too
                }
                reader.ReadFeatures(row, r);
                if (q.Label is not null) reader.ReadLabel(y, r);
                n++;
                q.Input.Observe(row, stats);
                if (q.Label?.Task == DeepTask.Regression)
                {
                    foreach (float v in y)
                    {
                        double delta = v - tMean; tMean += delta / ++targets; tM2 += delta * (v - tMean);
                    }
                }
                else if (q.Label is not null)
                {
                    foreach (float v in y)
                    {
                        int c = (int)v;
                        if (c == (int)FeatureReader.NoClass && w > 1) continue;   // an unlabelled step
                        if (c < 0 || c >= classCounts.Length)
                            throw new InvalidOperationException($"Label column '{q.LabelColumn}' has class {c} in row {r}, outside the {classCounts.Length} classes of its type.");
                        classCounts[c]++;
                    }
                }
                xs.Add(row);
                ys.Add(y);
            }
        }
        if (n == 0 && !q.AllowEmpty)
            throw new InvalidOperationException($"The {q.Role} data has no rows (feature column '{q.FeatureColumn}', label column '{q.LabelColumn}'); there is nothing to train on.");

        Count = n;
        if (n == 0) return;
        (FeatureMean, FeatureStd) = q.Input.SlotStatistics(stats);
        FeatureMin = stats.Min;
        FeatureMax = stats.Max;
        TargetMean = (float)tMean;
        TargetStd = (float)Math.Sqrt(tM2 / Math.Max(targets, 1));
        ClassCounts = classCounts;
        if (!xs.Overflowed)
        {
            _x = xs.ToTensor(n, q.Device);
            using var labels = ys.ToTensor(n, q.Device);
            _y = w == 1 ? labels.reshape(n) : labels.alias();
        }
    }

    /// <summary>
    /// Statistics pooled over the slots that repeat with <paramref name="period"/> (slot i shares with i ± period), repeated
    /// per slot: period = FeatureSize keeps each slot's own, 1 pools all features, F pools each feature of a T × F sequence.
    /// </summary>
    public (float[] Mean, float[] Std) PooledStatistics(int period)
    {
        if (period >= FeatureSize) return (FeatureMean, FeatureStd);
        if (period < 1 || FeatureSize % period != 0)
            throw new ArgumentOutOfRangeException(nameof(period), period, $"The statistics period must divide the {FeatureSize} features.");
        var mean = new double[period];
        var second = new double[period];
        int groups = FeatureSize / period;
        for (int i = 0; i < FeatureSize; i++)
        {
            double m = FeatureMean[i], s = FeatureStd[i];
            mean[i % period] += m / groups;
            second[i % period] += (s * s + m * m) / groups;
        }
        var std = mean.Select((m, j) => (float)Math.Sqrt(Math.Max(second[j] - m * m, 0))).ToArray();
        return (Enumerable.Range(0, FeatureSize).Select(i => (float)mean[i % period]).ToArray(),
                Enumerable.Range(0, FeatureSize).Select(i => std[i % period]).ToArray());
    }

    /// <summary>Mini-batches for one epoch; shuffled by <paramref name="shuffleSeed"/> when given. Dispose each batch.</summary>
    public IEnumerable<(Tensor X, Tensor Y)> Batches(int batchSize, int? shuffleSeed, Device device, CancellationToken token)
    {
        if (_x is not null)
        {
            // Created on the first MoveNext: keep it out of whatever dispose scope the caller has open then.
            using var perm = shuffleSeed is int s ? tensor(Permutation(Count, s), device: _x.device).DetachFromDisposeScope() : null;
            for (long start = 0; start < Count; start += batchSize)
            {
                token.ThrowIfCancellationRequested();
                long len = Math.Min(batchSize, Count - start);
                if (perm is null)
                    yield return (_x.narrow(0, start, len), _y!.narrow(0, start, len));
                else
                {
                    using var idx = perm.narrow(0, start, len);
                    yield return (_x.index_select(0, idx), _y!.index_select(0, idx));
                }
            }
            yield break;
        }
        foreach (var b in StreamBatches(batchSize, shuffleSeed, device, token)) yield return b;
    }

    /// <summary>
    /// The first rows of a reused batch buffer as a tensor of its own on the device: a native copy (a tensor made from a
    /// managed array pins and keeps that array, so every batch would leave one on the large-object heap until a full
    /// collection — measured: streaming memory grew with the data). For a GPU the copy is staged in pinned
    /// (page-locked) host memory and sent without blocking (libtorch's pinned allocator keeps it until the copy is done).
    /// </summary>
    private static Tensor ToDevice(float[] buffer, long[] shape, Device device)
    {
        using var view = tensor(buffer, [buffer.LongLength]);
        using var rows = view.narrow(0, 0, shape.Aggregate(1L, (a, b) => a * b)).view(shape);
        if (device.type != DeviceType.CUDA) return rows.clone();
        using var pinned = rows.pin_memory();
        return pinned.to(device, non_blocking: true);
    }

    private IEnumerable<(Tensor, Tensor)> StreamBatches(int batchSize, int? shuffleSeed, Device device, CancellationToken token)
    {
        var q = _request;
        int d = FeatureSize;
        int capacity = (int)Math.Clamp(q.BudgetBytes / Math.Max(1, 4L * (d + 1)), batchSize, Math.Max(batchSize, 64L * batchSize));
        var xs = new float[(long)capacity * d];
        int w = q.Label?.Width ?? 1;
        var ys = new float[(long)capacity * w];
        var rng = shuffleSeed is int s ? new Random(s) : null;
        using var cursor = q.Data.GetRowCursor(FeatureReader.Needed(q.Data.Schema, q.FeatureColumn, q.LabelColumn));
        var reader = new FeatureReader(cursor, q.FeatureColumn, q.Input, q.LabelColumn, q.Label);
        var bx = new float[(long)batchSize * d];
        var by = new float[(long)batchSize * w];
        long r = -1;
        int filled = 0;
        bool more = true;
        var heap = new HeapBound(q.BudgetBytes, collectNow: true);
        while (more)
        {
            more = cursor.MoveNext();
            if (more)
            {
                r++;
                if (!q.Filter.Keep(r)) continue;
                reader.ReadFeatures(xs.AsSpan(filled * d, d), r);
                if (q.Label is not null) reader.ReadLabel(ys.AsSpan(filled * w, w), r);
                filled++;
                if (filled < capacity) continue;
            }
            if (filled == 0) break;
            token.ThrowIfCancellationRequested();
            heap.Check();
            int[] order = Enumerable.Range(0, filled).ToArray();
            rng?.Shuffle(order);
            for (int start = 0; start < filled; start += batchSize)
            {
                int len = Math.Min(batchSize, filled - start);
                for (int i = 0; i < len; i++)
                {
                    Array.Copy(xs, (long)order[start + i] * d, bx, (long)i * d, d);
                    Array.Copy(ys, (long)order[start + i] * w, by, (long)i * w, w);
                }
                yield return (ToDevice(bx, [len, d], device), ToDevice(by, w == 1 ? [len] : [len, w], device));
            }
            filled = 0;
        }
    }

    /// <summary>
    /// Keeps a streamed pass's managed memory bounded by the budget instead of by the file. ML.NET's loaders allocate
    /// new buffers as they read (its binary loader: about 1.4× the data per pass, large arrays), which become garbage
    /// at once but are freed only by a full collection, and the runtime collects those lazily: measured, a streamed
    /// epoch's memory grew with the file (peak 355 MB above the start for 15,000 Fashion-MNIST rows, 876 MB for
    /// 60,000). A streamed epoch starts with a full collection, and whenever the heap has grown by the budget (at
    /// least 32 MB) since the last one, another frees them; the first pass does the same once it overflows the budget.
    /// </summary>
    private sealed class HeapBound
    {
        private readonly long _allowed;
        private long _after;

        public HeapBound(long budgetBytes, bool collectNow)
        {
            _allowed = Math.Max(budgetBytes, 32L << 20);
            if (collectNow) Collect();
            else _after = GC.GetTotalMemory(false);
        }

        public void Check()
        {
            if (GC.GetTotalMemory(false) - _after >= _allowed) Collect();
        }

        private void Collect()
        {
            // Compacting the large-object heap too: its freed buffers otherwise leave gaps the heap keeps.
            System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
            _after = GC.GetTotalMemory(false);
        }
    }

    private static long[] Permutation(long n, int seed)
    {
        var p = new long[n];
        for (long i = 0; i < n; i++) p[i] = i;
        new Random(seed).Shuffle(p);
        return p;
    }

    public void Dispose()
    {
        _x?.Dispose();
        _y?.Dispose();
    }

    /// <summary>A float buffer that doubles as it grows and gives up (overflows) past a byte budget.</summary>
    private sealed class GrowingBuffer(int width, long budgetBytes)
    {
        private float[] _data = new float[Math.Max(width, 1) * 1024];
        private long _length;
        public bool Overflowed { get; private set; }

        public void Add(ReadOnlySpan<float> row)
        {
            if (Overflowed) return;
            if ((_length + row.Length) * 4L > budgetBytes) { Overflowed = true; _data = []; return; }
            if (_length + row.Length > _data.Length)
                Array.Resize(ref _data, (int)Math.Min(Math.Max(_data.Length * 2L, _length + row.Length), Array.MaxLength));
            row.CopyTo(_data.AsSpan((int)_length));
            _length += row.Length;
        }

        public Tensor ToTensor(long rows, Device device)
        {
            var t = tensor(_data.AsSpan(0, (int)_length).ToArray(), [rows, width]);
            _data = [];
            if (device.type == DeviceType.CPU) return t;
            using (t) return t.to(device);
        }
    }
}

/// <summary>What <see cref="TrainingData.Load"/> reads: the data, its feature column and how to read it, the label, which rows, and where to.</summary>
/// <param name="Data">The data view.</param>
/// <param name="FeatureColumn">The feature column's name.</param>
/// <param name="Input">How the feature column is read.</param>
internal sealed record TrainingRequest(IDataView Data, string FeatureColumn, FeatureInput Input)
{
    /// <summary>The label column; null reads features only (every label reads as 0).</summary>
    public string? LabelColumn { get; init; }
    public LabelInfo? Label { get; init; }
    public RowFilter Filter { get; init; } = RowFilter.All;
    /// <summary>Data up to this many bytes is cached as tensors; larger data is streamed each epoch.</summary>
    public long BudgetBytes { get; init; } = long.MaxValue;
    public Device Device { get; init; } = CPU;
    public CancellationToken Token { get; init; }
    /// <summary>"training" or "validation", for messages.</summary>
    public string Role { get; init; } = "training";
    /// <summary>Whether no row is acceptable (a held-out split of small data).</summary>
    public bool AllowEmpty { get; init; }
}

/// <summary>Which rows belong to a split: a seeded hash of the row index, so cached and streamed reads agree.</summary>
internal sealed class RowFilter
{
    private readonly ulong _seed;
    private readonly double _fraction;
    private readonly bool _keepHeldOut;

    private RowFilter(ulong seed, double fraction, bool keepHeldOut) { _seed = seed; _fraction = fraction; _keepHeldOut = keepHeldOut; }

    /// <summary>Every row.</summary>
    public static RowFilter All { get; } = new(0, 0, false);

    /// <summary>The training rows of a split that holds out <paramref name="fraction"/>.</summary>
    public static RowFilter Train(int seed, double fraction) => new((ulong)seed, fraction, false);

    /// <summary>The held-out rows of the same split.</summary>
    public static RowFilter HeldOut(int seed, double fraction) => new((ulong)seed, fraction, true);

    public bool Keep(long row)
    {
        if (_fraction <= 0) return !_keepHeldOut;
        ulong z = (ulong)row + _seed * 0x9E3779B97F4A7C15UL + 0x632BE59BD9B4E019UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        bool heldOut = (z >> 11) * (1.0 / (1UL << 53)) < _fraction;
        return heldOut == _keepHeldOut;
    }
}
