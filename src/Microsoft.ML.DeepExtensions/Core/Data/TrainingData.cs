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
    private readonly IDataView _data;
    private readonly string _featureName;
    private readonly string? _labelName;
    private readonly LabelInfo? _label;
    private readonly RowFilter _filter;
    private readonly long _budgetBytes;
    private readonly ImageShape? _image;
    private readonly TokenInput? _tokens;
    private readonly SequenceInput? _sequence;
    private Tensor? _x;
    private Tensor? _y;

    public int FeatureSize { get; }
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

    private TrainingData(IDataView data, string featureName, int featureSize, ImageShape? image, TokenInput? tokens, SequenceInput? sequence, string? labelName, LabelInfo? label, RowFilter filter, long budgetBytes)
    {
        _data = data; _featureName = featureName; FeatureSize = featureSize; _image = image; _tokens = tokens; _sequence = sequence; _labelName = labelName; _label = label;
        _filter = filter; _budgetBytes = budgetBytes;
    }

    /// <summary>
    /// Reads, validates and (budget permitting) caches the rows that <paramref name="filter"/> keeps. A null
    /// <paramref name="labelName"/>/<paramref name="label"/> reads features only. For variable-length numeric sequences
    /// (<paramref name="sequence"/>), <see cref="FeatureMean"/>/<see cref="FeatureStd"/> hold each step feature's
    /// statistics over real steps only (padding excluded), repeated per step, and 0/1 for the length slot.
    /// </summary>
    public static TrainingData Load(IDataView data, string featureName, int featureSize, ImageShape? image, string? labelName, LabelInfo? label,
        RowFilter filter, long budgetBytes, Device device, CancellationToken token, string role, bool allowEmpty = false, TokenInput? tokens = null,
        SequenceInput? sequence = null)
    {
        var set = new TrainingData(data, featureName, featureSize, image, tokens, sequence, labelName, label, filter, budgetBytes);
        set.FirstPass(device, token, role, allowEmpty);
        return set;
    }

    private void FirstPass(Device device, CancellationToken token, string role, bool allowEmpty)
    {
        int d = FeatureSize;
        // Running statistics per slot, or per step feature over real steps for a variable-length sequence.
        int stats = _sequence?.Features ?? d;
        var mean = new double[stats];
        var m2 = new double[stats];
        var counts = new long[stats];
        var min = Enumerable.Repeat(float.PositiveInfinity, d).ToArray();
        var max = Enumerable.Repeat(float.NegativeInfinity, d).ToArray();
        double tMean = 0, tM2 = 0;
        var classCounts = new long[Math.Max(_label?.ClassCount ?? 0, 0)];
        var row = new float[d];
        var xs = new GrowingBuffer(d, _budgetBytes);
        int w = _label?.Width ?? 1;
        var ys = new GrowingBuffer(w, long.MaxValue);
        var y = new float[w];
        long n = 0, targets = 0;

        using (var cursor = _data.GetRowCursor(FeatureReader.Needed(_data.Schema, _featureName, _labelName)))
        {
            var reader = new FeatureReader(cursor, _featureName, d, _image, _labelName, _label, _tokens, _sequence);
            long r = -1;
            while (cursor.MoveNext())
            {
                r++;
                if (!_filter.Keep(r)) continue;
                if ((r & 1023) == 0) token.ThrowIfCancellationRequested();
                reader.ReadFeatures(row, r);
                if (_label is not null) reader.ReadLabel(y, r);
                n++;
                int first = _sequence is null ? 0 : 1, end = _sequence is null ? d : 1 + (int)row[0] * stats;
                for (int k = first; k < end; k++)
                {
                    int i = (k - first) % stats;
                    double delta = row[k] - mean[i];
                    mean[i] += delta / ++counts[i];
                    m2[i] += delta * (row[k] - mean[i]);
                    min[k] = Math.Min(min[k], row[k]);
                    max[k] = Math.Max(max[k], row[k]);
                }
                if (_label?.Task == DeepTask.Regression)
                {
                    foreach (float v in y)
                    {
                        double delta = v - tMean; tMean += delta / ++targets; tM2 += delta * (v - tMean);
                    }
                }
                else if (_label is not null)
                {
                    foreach (float v in y)
                    {
                        int c = (int)v;
                        if (c == (int)FeatureReader.NoClass && w > 1) continue;   // an unlabelled step
                        if (c < 0 || c >= classCounts.Length)
                            throw new InvalidOperationException($"Label column '{_labelName}' has class {c} in row {r}, outside the {classCounts.Length} classes of its type.");
                        classCounts[c]++;
                    }
                }
                xs.Add(row);
                ys.Add(y);
            }
        }
        if (n == 0 && !allowEmpty)
            throw new InvalidOperationException($"The {role} data has no rows (feature column '{_featureName}', label column '{_labelName}'); there is nothing to train on.");

        Count = n;
        if (n == 0) return;
        var std = m2.Select((v, i) => (float)Math.Sqrt(v / Math.Max(counts[i], 1))).ToArray();
        FeatureMean = _sequence is null ? mean.Select(m => (float)m).ToArray() : [0f, .. Enumerable.Range(0, d - 1).Select(k => (float)mean[k % stats])];
        FeatureStd = _sequence is null ? std : [1f, .. Enumerable.Range(0, d - 1).Select(k => std[k % stats])];
        FeatureMin = min;
        FeatureMax = max;
        TargetMean = (float)tMean;
        TargetStd = (float)Math.Sqrt(tM2 / Math.Max(targets, 1));
        ClassCounts = classCounts;
        if (!xs.Overflowed)
        {
            _x = xs.ToTensor(n, device);
            using var labels = ys.ToTensor(n, device);
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

    private IEnumerable<(Tensor, Tensor)> StreamBatches(int batchSize, int? shuffleSeed, Device device, CancellationToken token)
    {
        int d = FeatureSize;
        int capacity = (int)Math.Clamp(_budgetBytes / Math.Max(1, 4L * (d + 1)), batchSize, Math.Max(batchSize, 64L * batchSize));
        var xs = new float[(long)capacity * d];
        int w = _label?.Width ?? 1;
        var ys = new float[(long)capacity * w];
        var rng = shuffleSeed is int s ? new Random(s) : null;
        using var cursor = _data.GetRowCursor(FeatureReader.Needed(_data.Schema, _featureName, _labelName));
        var reader = new FeatureReader(cursor, _featureName, d, _image, _labelName, _label, _tokens, _sequence);
        long r = -1;
        int filled = 0;
        bool more = true;
        while (more)
        {
            more = cursor.MoveNext();
            if (more)
            {
                r++;
                if (!_filter.Keep(r)) continue;
                reader.ReadFeatures(xs.AsSpan(filled * d, d), r);
                if (_label is not null) reader.ReadLabel(ys.AsSpan(filled * w, w), r);
                filled++;
                if (filled < capacity) continue;
            }
            if (filled == 0) break;
            token.ThrowIfCancellationRequested();
            int[] order = Enumerable.Range(0, filled).ToArray();
            rng?.Shuffle(order);
            var bx = new float[(long)batchSize * d];
            var by = new float[(long)batchSize * w];
            for (int start = 0; start < filled; start += batchSize)
            {
                int len = Math.Min(batchSize, filled - start);
                for (int i = 0; i < len; i++)
                {
                    Array.Copy(xs, (long)order[start + i] * d, bx, (long)i * d, d);
                    Array.Copy(ys, (long)order[start + i] * w, by, (long)i * w, w);
                }
                yield return (tensor(bx.AsSpan(0, len * d).ToArray(), [len, d], device: device), tensor(by.AsSpan(0, len * w).ToArray(), w == 1 ? [len] : [len, w], device: device));
            }
            filled = 0;
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
