using System.IO.Compression;
using Microsoft.ML;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>
/// Model-file integrity: the saved entry records SHA-256 hashes of its manifest and weights; an altered, truncated or
/// foreign file raises <see cref="ModelFileException"/> naming the file; a file written before the hashes still loads.
/// </summary>
public class IntegrityTests(ITestOutputHelper output)
{
    private static readonly byte[] Marker = "MLDEEPX"u8.ToArray();

    private static (string Path, IDataView Test) SaveQuickModel()
    {
        var ml = new MLContext(seed: 1);
        using var model = ml.Deep().Mlp(Fixtures.QuickMlp(1)).Fit(Fixtures.DigitsBinary(ml, "train"));
        var test = Fixtures.DigitsBinary(ml, "test");
        var path = Path.Combine(Fixtures.TempDir(), "model.zip");
        ml.Model.Save(model, test.Schema, path);
        return (path, test);
    }

    /// <summary>Rewrites our entry inside the zip (the zip itself stays valid, with correct CRCs) after <paramref name="edit"/>.</summary>
    private static string Alter(string path, string name, Func<byte[], int, byte[]> edit)
    {
        var altered = Path.Combine(Path.GetDirectoryName(path)!, name);
        File.Copy(path, altered);
        using var zip = ZipFile.Open(altered, ZipArchiveMode.Update);
        var (entry, bytes) = zip.Entries.Select(e => (e, ReadAll(e))).Single(x => x.Item2.AsSpan().IndexOf(Marker) >= 0);
        var changed = edit(bytes, bytes.AsSpan().IndexOf(Marker));
        var entryName = entry.FullName;
        entry.Delete();
        using var w = zip.CreateEntry(entryName).Open();
        w.Write(changed);
        return altered;
    }

    // Entry layout (format 2): marker(7) format(1) manifestLength(4) manifest weightsLength(8) weights sha(32) sha(32).
    private static (int Manifest, int ManifestLength, int Weights, int WeightsLength) Layout(byte[] b, int at)
    {
        int manifestLength = BitConverter.ToInt32(b, at + 8);
        int weights = at + 12 + manifestLength + 8;
        return (at + 12, manifestLength, weights, (int)BitConverter.ToInt64(b, at + 12 + manifestLength));
    }

    private static ModelFileException LoadFails(string path, string expected)
    {
        var e = Assert.Throws<ModelFileException>(() => new MLContext().Deep().LoadModel(path, out _));
        Assert.Equal(path, e.Path);
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
        return e;
    }

    [Fact]
    public void A_saved_model_records_hashes_that_loading_verifies()
    {
        var (path, _) = SaveQuickModel();
        var loaded = (DeepTransformer)new MLContext().Deep().LoadModel(path, out _);
        var integrity = Assert.IsType<ModelIntegrity>(loaded.Versions.Integrity);
        Assert.True(integrity.Verified);
        Assert.Matches("^[0-9a-f]{64}$", integrity.WeightsSha256!);
        Assert.Matches("^[0-9a-f]{64}$", integrity.ManifestSha256!);
        Assert.Contains("verified on load", loaded.Versions.ToString());
        output.WriteLine(loaded.Versions.ToString());
    }

    [Fact]
    public void Altered_weights_are_detected_and_the_file_named()
    {
        var (path, _) = SaveQuickModel();
        var tampered = Alter(path, "tampered.zip", (b, at) =>
        {
            var (_, _, w, n) = Layout(b, at);
            b[w + n / 2] ^= 0x01;   // one bit in the middle of the weights: a float that is slightly wrong
            return b;
        });
        output.WriteLine(LoadFails(tampered, "weights do not match the SHA-256 recorded when it was saved").Message);
    }

    [Fact]
    public void An_altered_spec_is_detected()
    {
        var (path, _) = SaveQuickModel();
        var tampered = Alter(path, "spec.zip", (b, at) =>
        {
            var (m, length, _, _) = Layout(b, at);
            var json = b.AsSpan(m, length);
            int i = json.IndexOf("\"Dropout\":0"u8);
            Assert.True(i >= 0, "the MLP spec records its dropout");
            json[i + "\"Dropout\":".Length] = (byte)'1';   // same length, different network
            return b;
        });
        LoadFails(tampered, "manifest (network spec, options, history) does not match the SHA-256");
    }

    [Fact]
    public void A_truncated_entry_or_file_and_a_foreign_zip_each_raise_the_named_exception()
    {
        var (path, _) = SaveQuickModel();
        var cut = Alter(path, "cut-entry.zip", (b, at) => b[..(Layout(b, at).Weights + 100)]);
        output.WriteLine(LoadFails(cut, "corrupt or truncated entry").Message);   // ML.NET's own entry checks see it first

        var half = Path.Combine(Path.GetDirectoryName(path)!, "half.zip");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(half, bytes[..(bytes.Length / 2)]);
        output.WriteLine(LoadFails(half, "not a readable zip archive").Message);

        var foreign = Path.Combine(Path.GetDirectoryName(path)!, "foreign.zip");
        using (var zip = ZipFile.Open(foreign, ZipArchiveMode.Create))
        using (var w = new StreamWriter(zip.CreateEntry("readme.txt").Open())) w.Write("a zip, but not a model");
        output.WriteLine(LoadFails(foreign, "not an ML.NET model file: it has no model entries").Message);

        Assert.Throws<FileNotFoundException>(() => new MLContext().Deep().LoadModel(Path.Combine(Path.GetDirectoryName(path)!, "missing.zip"), out _));
    }

    [Fact]
    public void A_model_saved_before_the_hashes_still_loads_and_says_it_is_unverified()
    {
        // Fixtures/legacy-mlp-format1.zip: an MLP (64 → 8 → 1) saved by the library before format 2, with its first
        // five test scores as they were computed then.
        var ml = new MLContext();
        var path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "legacy-mlp-format1.zip");
        var model = ml.Deep().LoadModel(path, out _);
        var deep = model as DeepTransformer ?? (DeepTransformer)((IEnumerable<ITransformer>)model).Last();
        Assert.Same(ModelIntegrity.NotRecorded, deep.Versions.Integrity);
        Assert.Contains("not verified", deep.Versions.ToString());
        var scores = ml.Data.CreateEnumerable<ScoreRow>(model.Transform(Fixtures.DigitsBinary(ml, "test")), false).Take(5).Select(r => r.Score).ToArray();
        float[] then = [0.023466736f, -0.60733265f, -0.28304315f, 0.004082203f, -0.47461367f];
        for (int i = 0; i < then.Length; i++) Assert.Equal(then[i], scores[i], 1e-5f);
    }

    private sealed class ScoreRow { public float Score { get; set; } }

    private static byte[] ReadAll(ZipArchiveEntry e)
    {
        using var s = e.Open();
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }
}
