using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Trains a multilayer perceptron (fully connected network) for binary classification, multiclass classification or
/// regression on a vector feature column. Create it with <c>mlContext.Deep().Mlp(...)</c>.
/// </summary>
public sealed class MlpTrainer : DeepTrainerBase<MlpTrainer.Options>
{
    /// <summary>Options for <see cref="MlpTrainer"/>.</summary>
    public sealed class Options : DeepTrainerOptions
    {
        /// <summary>Hidden layer widths, input side first. Default [256, 128].</summary>
        public int[] HiddenLayers { get; set; } = [256, 128];

        /// <summary>Activation for every hidden layer (unless <see cref="LayerActivations"/> is set). Default ReLU.</summary>
        public Activation Activation { get; set; } = Activation.Relu;

        /// <summary>Per-layer activations (one per hidden layer); overrides <see cref="Activation"/>.</summary>
        public Activation[]? LayerActivations { get; set; }

        /// <summary>Dropout probability after each hidden layer. Default 0.1.</summary>
        public double Dropout { get; set; } = 0.1;

        /// <summary>Batch normalisation after each hidden Linear layer.</summary>
        public bool BatchNorm { get; set; }
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().Mlp(options)</c>).</summary>
    public MlpTrainer(MLContext context, Options options) : base(context, options, nameof(MlpTrainer)) { }

    /// <inheritdoc />
    protected override NetworkSpec CreateSpec(SpecRequest request) => new MlpSpec
    {
        InputSize = request.Input.Size,
        OutputSize = request.OutputSize,
        HiddenSizes = TrainerOptions.HiddenLayers.ToArray(),
        Activations = TrainerOptions.LayerActivations?.ToArray() ?? TrainerOptions.HiddenLayers.Select(_ => TrainerOptions.Activation).ToArray(),
        Dropout = TrainerOptions.Dropout,
        BatchNorm = TrainerOptions.BatchNorm,
    };
}
