using System.Reflection;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.DeepExtensions.Persistence;

/// <summary>
/// The one place that reaches into ML.NET internals. ML.NET's whole-chain persistence
/// (<c>ModelSaveContext</c>, <c>ModelLoadContext</c>, <c>VersionInfo</c>, the component catalog's loadable
/// classes) and <see cref="SchemaShape.Column"/>'s constructor are internal, so a third-party transformer
/// cannot take part in <c>mlContext.Model.Save/Load</c> without them. Every member used is resolved once,
/// eagerly, and <see cref="Verify"/> fails loudly (naming the member) if an ML.NET upgrade moves one.
/// </summary>
internal static class MlNetBridge
{
    private const BindingFlags Any = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;

    private static readonly Assembly CoreAssembly = typeof(ComponentCatalog).Assembly;
    private static readonly Type VersionInfoType = Find("Microsoft.ML.VersionInfo");
    private static readonly Type LoadContextType = Find("Microsoft.ML.ModelLoadContext");
    private static readonly Type SignatureLoadModelType = Find("Microsoft.ML.SignatureLoadModel");
    private static readonly Type LoadableClassAttributeType = Find("Microsoft.ML.LoadableClassAttribute");
    private static readonly Type LoadableClassInfoType = typeof(ComponentCatalog).GetNestedType("LoadableClassInfo", Any)
        ?? throw Missing("ComponentCatalog.LoadableClassInfo");

    private static readonly ConstructorInfo VersionInfoCtor = VersionInfoType.GetConstructor(Any, null,
        [typeof(string), typeof(uint), typeof(uint), typeof(uint), typeof(string), typeof(string), typeof(string)], null)
        ?? throw Missing("VersionInfo(string, uint, uint, uint, string, string, string)");
    private static readonly MethodInfo SaveCheckAtModel = typeof(ModelSaveContext).GetMethod("CheckAtModel", Any, Type.EmptyTypes)
        ?? throw Missing("ModelSaveContext.CheckAtModel()");
    private static readonly MethodInfo SaveSetVersionInfo = typeof(ModelSaveContext).GetMethod("SetVersionInfo", Any, [VersionInfoType])
        ?? throw Missing("ModelSaveContext.SetVersionInfo(VersionInfo)");
    private static readonly FieldInfo SaveWriter = typeof(ModelSaveContext).GetField("Writer", Any)
        ?? throw Missing("ModelSaveContext.Writer");
    private static readonly MethodInfo LoadCheckAtModel = LoadContextType.GetMethod("CheckAtModel", Any, [VersionInfoType])
        ?? throw Missing("ModelLoadContext.CheckAtModel(VersionInfo)");
    private static readonly FieldInfo LoadReader = LoadContextType.GetField("Reader", Any)
        ?? throw Missing("ModelLoadContext.Reader");
    private static readonly ConstructorInfo LoadableClassAttributeCtor = LoadableClassAttributeType.GetConstructor(Any, null,
        [typeof(Type), typeof(Type), typeof(Type), typeof(Type), typeof(string), typeof(string[])], null)
        ?? throw Missing("LoadableClassAttribute(Type, Type, Type, Type, string, string[])");
    private static readonly ConstructorInfo LoadableClassInfoCtor = LoadableClassInfoType.GetConstructors(Any)
        .SingleOrDefault(c => c.GetParameters().Length == 5) ?? throw Missing("LoadableClassInfo(attr, getter, ctor, create, requireEnvironment)");
    private static readonly MethodInfo CatalogAddClass = typeof(ComponentCatalog).GetMethod("AddClass", Any)
        ?? throw Missing("ComponentCatalog.AddClass(LoadableClassInfo, string[], bool)");
    private static readonly MethodInfo CatalogFindClass = typeof(ComponentCatalog).GetMethod("GetLoadableClassInfo", Any, [typeof(string), typeof(Type)])
        ?? throw Missing("ComponentCatalog.GetLoadableClassInfo(string, Type)");
    private static readonly FieldInfo CatalogLock = typeof(ComponentCatalog).GetField("_lock", Any)
        ?? throw Missing("ComponentCatalog._lock");
    private static readonly ConstructorInfo ShapeColumnCtor = typeof(SchemaShape.Column).GetConstructor(Any, null,
        [typeof(string), typeof(SchemaShape.Column.VectorKind), typeof(DataViewType), typeof(bool), typeof(SchemaShape)], null)
        ?? throw Missing("SchemaShape.Column(string, VectorKind, DataViewType, bool, SchemaShape)");

    private static readonly MethodInfo ShapeCreate = typeof(SchemaShape).GetMethod("Create", Any, [typeof(DataViewSchema)])
        ?? throw Missing("SchemaShape.Create(DataViewSchema)");

    /// <summary>The <see cref="SchemaShape"/> of a schema (ML.NET's <c>SchemaShape.Create</c> is internal).</summary>
    public static SchemaShape Shape(DataViewSchema schema) => (SchemaShape)ShapeCreate.Invoke(null, [schema])!;

    /// <summary>Forces every reflected member to resolve; throws naming the first one ML.NET no longer has.</summary>
    public static void Verify() => _ = ShapeColumnCtor;

    private static Type Find(string name) => CoreAssembly.GetType(name, throwOnError: false) ?? throw Missing(name);

    private static Exception Missing(string member) => new InvalidOperationException(
        $"Microsoft.ML.DeepExtensions cannot bind to the ML.NET internal '{member}' in {typeof(ComponentCatalog).Assembly.GetName()}. " +
        "This ML.NET version is not supported by this build of Microsoft.ML.DeepExtensions (built against Microsoft.ML 5.0.1).");

    private static object NewVersionInfo(string modelSignature, uint version, string loaderSignature, string loaderAssembly) =>
        VersionInfoCtor.Invoke([modelSignature, version, version, version, loaderAssembly, loaderSignature, null]);

    /// <summary>Creates a <see cref="SchemaShape.Column"/> (its constructor is internal).</summary>
    public static SchemaShape.Column ShapeColumn(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey,
        SchemaShape? annotations = null) =>
        (SchemaShape.Column)ShapeColumnCtor.Invoke([name, kind, itemType, isKey, annotations ?? new SchemaShape([])]);

    /// <summary>Writes the model header's version info and then the payload into <paramref name="ctx"/>.</summary>
    public static void Save(ModelSaveContext ctx, string modelSignature, uint version, string loaderSignature, Action<BinaryWriter> payload)
    {
        SaveCheckAtModel.Invoke(ctx, null);
        SaveSetVersionInfo.Invoke(ctx, [NewVersionInfo(modelSignature, version, loaderSignature, typeof(MlNetBridge).Assembly.FullName!)]);
        payload((BinaryWriter)SaveWriter.GetValue(ctx)!);
    }

    /// <summary>Checks the header of a load context (signature, versions) and returns its reader.</summary>
    public static BinaryReader OpenForLoad(object loadContext, string modelSignature, uint version, string loaderSignature)
    {
        try
        {
            LoadCheckAtModel.Invoke(loadContext, [NewVersionInfo(modelSignature, version, loaderSignature, typeof(MlNetBridge).Assembly.FullName!)]);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw new FormatException($"This model entry is not a readable {loaderSignature} entry: {e.InnerException.Message}", e.InnerException);
        }
        return (BinaryReader)LoadReader.GetValue(loadContext)!;
    }

    /// <summary>
    /// Registers a loadable class for ML.NET's <c>SignatureLoadModel</c> in <paramref name="catalog"/>, the way an
    /// assembly-level <c>[LoadableClass]</c> attribute would. <paramref name="create"/> must be a static method
    /// <c>(IHostEnvironment env, object modelLoadContext)</c> returning the instance.
    /// </summary>
    public static void RegisterLoader(ComponentCatalog catalog, Type instanceType, string loaderSignature, MethodInfo create)
    {
        lock (CatalogLock.GetValue(catalog)!)
        {
            if (CatalogFindClass.Invoke(catalog, [loaderSignature.ToLowerInvariant(), SignatureLoadModelType]) != null)
                return;
            var attr = LoadableClassAttributeCtor.Invoke([instanceType, create.DeclaringType!, null!, SignatureLoadModelType,
                instanceType.Name, new[] { loaderSignature }]);
            var info = LoadableClassInfoCtor.Invoke([attr, null, null, create, true]);
            CatalogAddClass.Invoke(catalog, [info, new[] { loaderSignature }, true]);
        }
    }

    /// <summary>The internal <c>ModelLoadContext</c> type (for tests).</summary>
    internal static Type ModelLoadContextType => LoadContextType;
}
