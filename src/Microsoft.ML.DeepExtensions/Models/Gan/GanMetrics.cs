using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>Measures for judging a GAN: the Fréchet distance between feature sets, and the ROC AUC of its score as a detector.</summary>
public static class GanMetrics
{
    /// <summary>
    /// The Fréchet distance between Gaussians fitted to two sets of feature vectors (FID when the features are a
    /// classifier's penultimate layer): ‖μa − μb‖² + Tr(Σa + Σb − 2(Σa Σb)^½). Computed in double precision; compare it with
    /// the distance between two real samples of the same size (its floor).
    /// </summary>
    public static double FrechetDistance(IReadOnlyList<float[]> a, IReadOnlyList<float[]> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Count < 2 || b.Count < 2) throw new ArgumentException("Each set needs at least two vectors.");
        int d = a[0].Length;
        if (a.Concat(b).Any(v => v.Length != d)) throw new ArgumentException($"All vectors must have the same length ({d}).");
        using var scope = torch.NewDisposeScope();
        var (muA, covA) = Moments(a, d);
        var (muB, covB) = Moments(b, d);
        // Tr((Σa Σb)^½) = Σ √λ of the symmetric Σa^½ Σb Σa^½.
        var (valsA, vecsA) = linalg.eigh(covA);
        var rootA = vecsA.matmul(diag(valsA.clamp_min(0).sqrt())).matmul(vecsA.T);
        var middle = rootA.matmul(covB).matmul(rootA);
        var traceRoot = linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum();
        var distance = (muA - muB).square().sum() + covA.trace() + covB.trace() - 2 * traceRoot;
        return distance.item<double>();
    }

    private static (Tensor Mean, Tensor Covariance) Moments(IReadOnlyList<float[]> rows, int d)
    {
        var flat = new double[(long)rows.Count * d];
        for (int i = 0; i < rows.Count; i++)
            for (int j = 0; j < d; j++) flat[(long)i * d + j] = rows[i][j];
        var x = tensor(flat, [rows.Count, d]);
        var mean = x.mean([0]);
        var centered = x - mean;
        return (mean, centered.T.matmul(centered) / (rows.Count - 1));
    }

    /// <summary>
    /// Area under the ROC curve of <paramref name="scores"/> for telling <paramref name="positive"/> rows from the others:
    /// the chance that a random positive scores above a random negative (ties count half). For a GAN's <c>Score</c>,
    /// mark normal rows positive to measure it as an anomaly detector.
    /// </summary>
    public static double AreaUnderRocCurve(IReadOnlyList<float> scores, IReadOnlyList<bool> positive)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(positive);
        if (scores.Count != positive.Count) throw new ArgumentException($"{scores.Count} scores but {positive.Count} labels.");
        var neg = scores.Where((_, i) => !positive[i]).ToArray();
        long pos = positive.Count(p => p);
        if (pos == 0 || neg.Length == 0) throw new ArgumentException("The AUC needs at least one positive and one negative row.");
        Array.Sort(neg);
        double wins = 0;
        for (int i = 0; i < scores.Count; i++)
        {
            if (!positive[i]) continue;
            int below = LowerBound(neg, scores[i]), notAbove = LowerBound(neg, MathF.BitIncrement(scores[i]));
            wins += below + 0.5 * (notAbove - below);
        }
        return wins / ((double)pos * neg.Length);
    }

    private static int LowerBound(float[] sorted, float value)
    {
        int lo = 0, hi = sorted.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (sorted[mid] < value) lo = mid + 1; else hi = mid;
        }
        return lo;
    }
}
