using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.DeepExtensions.Persistence;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>
/// The reflection into ML.NET internals lives in MlNetBridge only. These tests fail loudly — naming the member — if an
/// ML.NET upgrade renames or reshapes anything it relies on.
/// </summary>
public class MlNetBridgeTests
{
    [Fact]
    public void EveryInternalMemberResolves()
    {
        var ex = Record.Exception(MlNetBridge.Verify);
        Assert.Null(ex);
    }

    [Fact]
    public void BuiltAgainstTheMlNetVersionItReflectsInto()
    {
        var version = typeof(MLContext).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
        Assert.StartsWith("5.0.1", version);
    }

    [Fact]
    public void ShapeColumnsAreRealSchemaShapeColumns()
    {
        var col = MlNetBridge.ShapeColumn("Score", SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false);
        Assert.Equal("Score", col.Name);
        Assert.Equal(SchemaShape.Column.VectorKind.Vector, col.Kind);
        Assert.Equal(NumberDataViewType.Single, col.ItemType);
        var shape = MlNetBridge.Shape(TestData.Digits(new MLContext(), "test").Schema);
        Assert.Contains(shape, c => c.Name == "Pixels" && c.Kind == SchemaShape.Column.VectorKind.Vector);
    }

    [Fact]
    public void RegistrationIsIdempotentPerContextAndSeparateAcrossContexts()
    {
        var a = new MLContext();
        DeepCatalog.Register(a);
        DeepCatalog.Register(a);   // a second registration of the same name would throw inside ML.NET
        a.Deep();
        var b = new MLContext();
        b.Deep();
        var untouched = new MLContext();
        Assert.NotNull(Loader(a));
        Assert.NotNull(Loader(b));
        Assert.Null(Loader(untouched));   // registration is per context

        // What registration is for: a model saved in one context loads in another that called Deep().
        var data = Fixtures.DigitsBinary(a, "train");
        using var model = a.Deep().Mlp(Fixtures.QuickMlp(1)).Fit(data);
        var path = Path.Combine(Fixtures.TempDir(), "model.zip");
        a.Model.Save(model, data.Schema, path);
        Assert.IsType<DeepTransformer>(b.Model.Load(path, out _));
        Assert.ThrowsAny<Exception>(() => untouched.Model.Load(path, out _));
    }

    private static object Loader(MLContext ctx)
    {
        var sig = typeof(ComponentCatalog).Assembly.GetType("Microsoft.ML.SignatureLoadModel")!;
        var find = typeof(ComponentCatalog).GetMethod("GetLoadableClassInfo", BindingFlags.NonPublic | BindingFlags.Instance, [typeof(string), typeof(Type)])!;
        return find.Invoke(ctx.ComponentCatalog, [DeepTransformer.LoaderSignature.ToLowerInvariant(), sig]);
    }

    [Fact]
    public void TheLoaderIsTheSignatureMlNetLooksUp()
    {
        var sig = typeof(ComponentCatalog).Assembly.GetType("Microsoft.ML.SignatureLoadModel");
        Assert.NotNull(sig);
        var ctx = new MLContext();
        ctx.Deep();
        var find = typeof(ComponentCatalog).GetMethod("GetLoadableClassInfo", BindingFlags.NonPublic | BindingFlags.Instance, [typeof(string), typeof(Type)]);
        Assert.NotNull(find);
        var info = find.Invoke(ctx.ComponentCatalog, [DeepTransformer.LoaderSignature.ToLowerInvariant(), sig]);
        Assert.NotNull(info);
    }
}
