using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.DeepExtensions.NasBert.Tests;

/// <summary>
/// Microsoft.ML.TorchSharp 0.23.1 was compiled against TorchSharp 0.102.7; this repository runs TorchSharp 0.107. These
/// tests check that it binds (every TorchSharp type and member its NAS-BERT code calls exists in 0.107, and its estimator builds) without
/// its pretrained weights, and that the comparison helper skips with a clear message when the weights cannot be fetched.
/// </summary>
public class NasBertTests
{
    private readonly ITestOutputHelper _out;
    public NasBertTests(ITestOutputHelper output) => _out = output;

    private sealed class Sms
    {
        [LoadColumn(0)] public string Class { get; set; }
        [LoadColumn(1)] public string Text { get; set; }
    }

    private static string SmsPath()
    {
        var env = Environment.GetEnvironmentVariable("DEEPEXT_DATA");
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); env is null && dir != null; dir = dir.Parent)
            if (Directory.Exists(Path.Combine(dir.FullName, "shared", "data"))) env = Path.Combine(dir.FullName, "shared", "data");
        return Path.Combine(env ?? throw new DirectoryNotFoundException("shared/data not found; set DEEPEXT_DATA."), "sms-spam", "SMSSpamCollection");
    }

    [Fact]
    public void EveryTorchSharpMemberNasBertCallsExistsInTorchSharp0107()
    {
        var torchSharp = typeof(global::TorchSharp.torch).Assembly;
        Assert.StartsWith("0.107.", torchSharp.GetName().Version!.ToString());
        var mlTorch = typeof(Microsoft.ML.TorchSharp.TorchSharpCatalog).Assembly;
        using var pe = new PEReader(File.OpenRead(mlTorch.Location));
        var md = pe.GetMetadataReader();
        var provider = new NameProvider(md);

        int types = 0, members = 0;
        var missing = new List<string>();
        var nasBertMissing = new List<string>();
        foreach (var handle in md.TypeReferences)
        {
            if (!FromTorchSharp(md, handle)) continue;
            types++;
            if (torchSharp.GetType(provider.GetTypeFromReference(md, handle, 0)) is null)
                missing.Add("type " + provider.GetTypeFromReference(md, handle, 0));
        }
        foreach (var handle in md.MemberReferences)
        {
            var member = md.GetMemberReference(handle);
            string owner = member.Parent.Kind switch
            {
                HandleKind.TypeReference when FromTorchSharp(md, (TypeReferenceHandle)member.Parent) =>
                    provider.GetTypeFromReference(md, (TypeReferenceHandle)member.Parent, 0),
                HandleKind.TypeSpecification => provider.Definition(md.GetTypeSpecification((TypeSpecificationHandle)member.Parent)),
                _ => null,
            };
            if (owner is null || torchSharp.GetType(owner) is not { } type) continue;   // not TorchSharp (or reported above)
            members++;
            string name = md.GetString(member.Name);
            const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static;
            bool found;
            if (member.GetKind() == MemberReferenceKind.Field)
                found = type.GetField(name, all) is not null;
            else
            {
                var signature = member.DecodeMethodSignature(provider, null);
                int count = signature.ParameterTypes.Length;
                found = name == ".ctor"
                    ? type.GetConstructors(all).Any(c => c.GetParameters().Length == count)
                    : Hierarchy(type).SelectMany(t => t.GetMethods(all)).Any(m => m.Name == name && m.GetParameters().Length == count
                        && (m.IsGenericMethodDefinition ? m.GetGenericArguments().Length : 0) == signature.GenericParameterCount);
            }
            if (!found)
            {
                var callers = Callers(md, pe, MetadataTokens.GetToken(handle));
                missing.Add($"{owner}::{name} ({signatureCount(member)} parameters), called from {string.Join(", ", callers)}");
                if (callers.Any(c => c.Contains("NasBert") || c.Contains("TorchSharpBase"))) nasBertMissing.Add($"{owner}::{name}");
            }
        }
        _out.WriteLine($"Microsoft.ML.TorchSharp {mlTorch.GetName().Version} references {types} TorchSharp types and {members} members; " +
                       $"TorchSharp {torchSharp.GetName().Version} lacks {missing.Count}: {string.Join("; ", missing)}");
        Assert.True(types > 20 && members > 100, "the scan found too little to mean anything");
        // What NAS-BERT (TextClassification) runs must all bind; other tasks of the package may not (reported above).
        Assert.Empty(nasBertMissing);

        int signatureCount(MemberReference m) => m.DecodeMethodSignature(provider, null).ParameterTypes.Length;
    }

    /// <summary>"Namespace.Type.Method" of every method whose IL calls the member reference <paramref name="token"/>.</summary>
    private static List<string> Callers(MetadataReader md, PEReader pe, int token)
    {
        var pattern = BitConverter.GetBytes(token);
        var callers = new List<string>();
        foreach (var typeHandle in md.TypeDefinitions)
        {
            var type = md.GetTypeDefinition(typeHandle);
            foreach (var methodHandle in type.GetMethods())
            {
                var method = md.GetMethodDefinition(methodHandle);
                if (method.RelativeVirtualAddress == 0) continue;
                var il = pe.GetMethodBody(method.RelativeVirtualAddress).GetILBytes();
                for (int i = 1; i + 4 <= il.Length; i++)
                    if (il[i - 1] is 0x28 or 0x6F or 0x73 && il.AsSpan(i, 4).SequenceEqual(pattern))   // call, callvirt, newobj
                    {
                        var declaring = type.GetDeclaringType().IsNil ? type : md.GetTypeDefinition(type.GetDeclaringType());
                        callers.Add($"{md.GetString(declaring.Namespace)}.{md.GetString(type.Name)}.{md.GetString(method.Name)}");
                        break;
                    }
            }
        }
        return callers;
    }

    [Fact]
    public void TheNasBertEstimatorBuildsWithoutWeights()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromTextFile<Sms>(SmsPath(), separatorChar: '\t', allowQuoting: false);
        var pipeline = NasBertCandidate.Pipeline(ml, "Class", "Text");
        // SchemaShape.Create(DataViewSchema) is internal to ML.NET.
        var shape = (SchemaShape)typeof(SchemaShape).GetMethod("Create", BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Static, [typeof(DataViewSchema)])!
            .Invoke(null, [data.Schema])!;
        var schema = pipeline.GetOutputSchema(shape);
        Assert.Contains(schema, c => c.Name == "PredictedLabel");
        Assert.Contains(schema, c => c.Name == "Score");
    }

    [Fact]
    public void TheComparisonTrainsNasBertOrSkipsWithAClearMessage()
    {
        // ML.NET waits MICROSOFTML_RESOURCE_TIMEOUT (ms) per download attempt; offline, a short wait is enough to know.
        if (Environment.GetEnvironmentVariable("MICROSOFTML_RESOURCE_TIMEOUT") is null)
            Environment.SetEnvironmentVariable("MICROSOFTML_RESOURCE_TIMEOUT", "20000");
        var ml = new MLContext(seed: 1);
        var all = ml.Data.LoadFromTextFile<Sms>(SmsPath(), separatorChar: '\t', allowQuoting: false);
        var small = ml.Data.TakeRows(all, 64);
        var result = NasBertCandidate.TryFit(ml, small, "Class", "Text");
        if (result.Skipped)
        {
            _out.WriteLine(result.SkipReason);
            Assert.Contains("NAS-BERT skipped", result.SkipReason);
            Assert.Contains("could not be downloaded", result.SkipReason);
            return;
        }
        var metrics = ml.MulticlassClassification.Evaluate(result.Model.Transform(small), labelColumnName: "Label");
        _out.WriteLine($"NAS-BERT (64 messages, 1 epoch) trained: micro accuracy {metrics.MicroAccuracy:F4}");
        Assert.InRange(metrics.MicroAccuracy, 0, 1);
    }

    private static bool FromTorchSharp(MetadataReader md, TypeReferenceHandle handle)
    {
        var t = md.GetTypeReference(handle);
        while (t.ResolutionScope.Kind == HandleKind.TypeReference) t = md.GetTypeReference((TypeReferenceHandle)t.ResolutionScope);
        return t.ResolutionScope.Kind == HandleKind.AssemblyReference
            && md.GetString(md.GetAssemblyReference((AssemblyReferenceHandle)t.ResolutionScope).Name) == "TorchSharp";
    }

    private static IEnumerable<Type> Hierarchy(Type t)
    {
        for (var x = t; x != null; x = x.BaseType) yield return x;
    }

    /// <summary>Reflection-style names of referenced types ("TorchSharp.torch+nn", generic definitions as "Name`N").</summary>
    private sealed class NameProvider(MetadataReader md) : ISignatureTypeProvider<string, object>
    {
        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind)
        {
            var t = reader.GetTypeReference(handle);
            string name = reader.GetString(t.Name);
            if (t.ResolutionScope.Kind == HandleKind.TypeReference)
                return GetTypeFromReference(reader, (TypeReferenceHandle)t.ResolutionScope, 0) + "+" + name;
            string ns = reader.GetString(t.Namespace);
            return ns.Length == 0 ? name : ns + "." + name;
        }

        public string Definition(TypeSpecification spec)
        {
            var blob = md.GetBlobReader(spec.Signature);
            if (blob.ReadSignatureTypeCode() != SignatureTypeCode.GenericTypeInstance) return null;
            blob.ReadCompressedInteger();   // class / valuetype
            var handle = blob.ReadTypeHandle();
            return handle.Kind == HandleKind.TypeReference && IsTorch((TypeReferenceHandle)handle)
                ? GetTypeFromReference(md, (TypeReferenceHandle)handle, 0) : null;
        }

        private bool IsTorch(TypeReferenceHandle h) => FromTorchSharp(md, h);

        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => reader.GetString(reader.GetTypeDefinition(handle).Name);
        public string GetTypeFromSpecification(MetadataReader reader, object genericContext, TypeSpecificationHandle handle, byte rawTypeKind) => "spec";
        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode.ToString();
        public string GetSZArrayType(string elementType) => elementType + "[]";
        public string GetArrayType(string elementType, ArrayShape shape) => elementType + "[,]";
        public string GetByReferenceType(string elementType) => elementType + "&";
        public string GetPointerType(string elementType) => elementType + "*";
        public string GetPinnedType(string elementType) => elementType;
        public string GetGenericInstantiation(string genericType, ImmutableArray<string> typeArguments) => genericType;
        public string GetGenericMethodParameter(object genericContext, int index) => "!!" + index;
        public string GetGenericTypeParameter(object genericContext, int index) => "!" + index;
        public string GetFunctionPointerType(MethodSignature<string> signature) => "fnptr";
        public string GetModifiedType(string modifier, string unmodifiedType, bool isRequired) => unmodifiedType;
    }
}
