using Microsoft.ML.Trainers;
using Microsoft.ML.Trainers.FastTree;
using Microsoft.ML.Trainers.LightGbm;

namespace Microsoft.ML.DeepExtensions.AutoML;

/// <summary>
/// Classic ML.NET trainers as comparison candidates, with fixed settings that work (no search): LightGBM, FastTree,
/// FastForest, SDCA, L-BFGS logistic / maximum-entropy and the averaged perceptron. Linear trainers get min-max
/// normalisation in front; trees see the raw features.
/// </summary>
public static class ClassicCandidates
{
    /// <summary>All classic candidates, the cheapest first (linear models, then trees): a comparison runs them in this order.</summary>
    public static IReadOnlyList<CandidateFactory> All => [Sdca, Lbfgs, AveragedPerceptron, LightGbm, FastTree, FastForest];

    /// <summary>LightGBM gradient-boosted trees, 100 rounds (binary, multiclass, regression).</summary>
    public static CandidateFactory LightGbm { get; } = new()
    {
        Name = "LightGBM",
        Kind = CandidateKind.Classic,
        Tasks = [DeepTask.BinaryClassification, DeepTask.MulticlassClassification, DeepTask.Regression],
        FixedParameters = new HyperParameters { ["NumberOfIterations"] = 100, ["NumberOfLeaves"] = 31, ["LearningRate"] = 0.1 },
        Build = (c, _) => c.Task switch
        {
            DeepTask.BinaryClassification => c.Context.BinaryClassification.Trainers.LightGbm(new LightGbmBinaryTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, NumberOfIterations = 100, NumberOfLeaves = 31, LearningRate = 0.1, NumberOfThreads = c.NumberOfThreads, Seed = c.Seed }),
            DeepTask.MulticlassClassification => c.Context.MulticlassClassification.Trainers.LightGbm(new LightGbmMulticlassTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, NumberOfIterations = 100, NumberOfLeaves = 31, LearningRate = 0.1, NumberOfThreads = c.NumberOfThreads, Seed = c.Seed }),
            _ => c.Context.Regression.Trainers.LightGbm(new LightGbmRegressionTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, NumberOfIterations = 100, NumberOfLeaves = 31, LearningRate = 0.1, NumberOfThreads = c.NumberOfThreads, Seed = c.Seed }),
        },
    };

    /// <summary>FastTree (MART) boosted trees, 100 trees (binary, regression).</summary>
    public static CandidateFactory FastTree { get; } = new()
    {
        Name = "FastTree",
        Kind = CandidateKind.Classic,
        Tasks = [DeepTask.BinaryClassification, DeepTask.Regression],
        FixedParameters = new HyperParameters { ["NumberOfTrees"] = 100, ["NumberOfLeaves"] = 20 },
        Build = (c, _) => c.Task == DeepTask.BinaryClassification
            ? c.Context.BinaryClassification.Trainers.FastTree(new FastTreeBinaryTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, NumberOfTrees = 100, NumberOfLeaves = 20, NumberOfThreads = c.NumberOfThreads, Seed = c.Seed })
            : c.Context.Regression.Trainers.FastTree(new FastTreeRegressionTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, NumberOfTrees = 100, NumberOfLeaves = 20, NumberOfThreads = c.NumberOfThreads, Seed = c.Seed }),
    };

    /// <summary>FastForest random forest, 100 trees (binary, regression).</summary>
    public static CandidateFactory FastForest { get; } = new()
    {
        Name = "FastForest",
        Kind = CandidateKind.Classic,
        Tasks = [DeepTask.BinaryClassification, DeepTask.Regression],
        FixedParameters = new HyperParameters { ["NumberOfTrees"] = 100, ["NumberOfLeaves"] = 20 },
        Build = (c, _) => c.Task == DeepTask.BinaryClassification
            ? c.Context.BinaryClassification.Trainers.FastForest(new FastForestBinaryTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, NumberOfTrees = 100, NumberOfLeaves = 20, NumberOfThreads = c.NumberOfThreads, Seed = c.Seed })
            : c.Context.Regression.Trainers.FastForest(new FastForestRegressionTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, NumberOfTrees = 100, NumberOfLeaves = 20, NumberOfThreads = c.NumberOfThreads, Seed = c.Seed }),
    };

    /// <summary>SDCA: logistic regression (binary), maximum entropy (multiclass), least squares (regression); 20 passes.</summary>
    public static CandidateFactory Sdca { get; } = new()
    {
        Name = "SDCA",
        Kind = CandidateKind.Classic,
        Tasks = [DeepTask.BinaryClassification, DeepTask.MulticlassClassification, DeepTask.Regression],
        FixedParameters = new HyperParameters { ["MaximumNumberOfIterations"] = 20, ["Normalization"] = "MinMax" },
        Build = (c, _) => Normalized(c, c.Task switch
        {
            DeepTask.BinaryClassification => c.Context.BinaryClassification.Trainers.SdcaLogisticRegression(new SdcaLogisticRegressionBinaryTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, MaximumNumberOfIterations = 20, NumberOfThreads = c.NumberOfThreads }),
            DeepTask.MulticlassClassification => c.Context.MulticlassClassification.Trainers.SdcaMaximumEntropy(new SdcaMaximumEntropyMulticlassTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, MaximumNumberOfIterations = 20, NumberOfThreads = c.NumberOfThreads }),
            _ => c.Context.Regression.Trainers.Sdca(new SdcaRegressionTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, MaximumNumberOfIterations = 20, NumberOfThreads = c.NumberOfThreads }),
        }),
    };

    /// <summary>L-BFGS logistic regression (binary) or maximum entropy (multiclass).</summary>
    public static CandidateFactory Lbfgs { get; } = new()
    {
        Name = "L-BFGS",
        Kind = CandidateKind.Classic,
        Tasks = [DeepTask.BinaryClassification, DeepTask.MulticlassClassification],
        FixedParameters = new HyperParameters { ["L2Regularization"] = 1.0, ["Normalization"] = "MinMax" },
        Build = (c, _) => Normalized(c, c.Task == DeepTask.BinaryClassification
            ? c.Context.BinaryClassification.Trainers.LbfgsLogisticRegression(new LbfgsLogisticRegressionBinaryTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, NumberOfThreads = c.NumberOfThreads })
            : c.Context.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options
            { LabelColumnName = c.LabelColumnName, FeatureColumnName = c.FeatureColumnName, NumberOfThreads = c.NumberOfThreads })),
    };

    /// <summary>ML.NET's averaged perceptron (binary), 10 passes.</summary>
    public static CandidateFactory AveragedPerceptron { get; } = new()
    {
        Name = "AveragedPerceptron",
        Kind = CandidateKind.Classic,
        Tasks = [DeepTask.BinaryClassification],
        FixedParameters = new HyperParameters { ["NumberOfIterations"] = 10, ["Normalization"] = "MinMax" },
        Build = (c, _) => Normalized(c, c.Context.BinaryClassification.Trainers.AveragedPerceptron(
            c.LabelColumnName, c.FeatureColumnName, numberOfIterations: 10)),
    };

    private static IEstimator<ITransformer> Normalized(CandidateContext c, IEstimator<ITransformer> trainer) =>
        c.Context.Transforms.NormalizeMinMax(c.FeatureColumnName).Append(trainer);
}
