using System.Text.Json.Serialization;

namespace Microsoft.ML.DeepExtensions.Training;

/// <summary>
/// How the learning rate changes from epoch to epoch: a <see cref="TrainingCallback"/> that sets
/// <see cref="TrainingContext.LearningRate"/> before each epoch. Stateless except for <see cref="ReduceOnPlateauSchedule"/>.
/// Set one as <see cref="DeepTrainerOptions.LearningRateSchedule"/> (it is stored with the model's options).
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "kind")]
[JsonDerivedType(typeof(StepSchedule), "step")]
[JsonDerivedType(typeof(CosineSchedule), "cosine")]
[JsonDerivedType(typeof(ReduceOnPlateauSchedule), "plateau")]
public abstract class LearningRateSchedule : TrainingCallback
{
    /// <summary>Multiply the learning rate by <paramref name="gamma"/> every <paramref name="stepEpochs"/> epochs.</summary>
    public static StepSchedule Step(int stepEpochs, double gamma = 0.1) => new() { StepEpochs = stepEpochs, Gamma = gamma };

    /// <summary>Cosine decay from the base rate to <paramref name="minimum"/> over the run, after optional linear warm-up.</summary>
    public static CosineSchedule Cosine(double minimum = 0, int warmupEpochs = 0) => new() { Minimum = minimum, WarmupEpochs = warmupEpochs };

    /// <summary>Multiply the rate by <paramref name="factor"/> when the validation loss has not improved for <paramref name="patience"/> epochs.</summary>
    public static ReduceOnPlateauSchedule ReduceOnPlateau(double factor = 0.5, int patience = 2) => new() { Factor = factor, Patience = patience };

    /// <summary>The learning rate for 0-based <paramref name="epoch"/> of <paramref name="epochs"/>.</summary>
    internal abstract double Rate(double baseRate, int epoch, int epochs);

    /// <summary>Observes the epoch's validation loss (plateau schedules).</summary>
    internal virtual void Observe(double? validationLoss) { }

    /// <summary>Forgets what earlier fits observed.</summary>
    internal virtual void Reset() { }

    /// <inheritdoc />
    public sealed override void OnTrainBegin(TrainingContext context) => Reset();

    /// <summary>Sets the epoch's rate from the base rate, the epoch and the planned epochs.</summary>
    public sealed override void OnEpochBegin(TrainingContext context) =>
        context.LearningRate = Rate(context.BaseLearningRate, context.Epoch - 1, context.TotalEpochs);

    /// <summary>Observes the epoch's validation loss.</summary>
    public sealed override void OnEpochEnd(TrainingContext context) => Observe(context.Record?.ValidationLoss);
}

/// <summary>Step decay.</summary>
public sealed class StepSchedule : LearningRateSchedule
{
    /// <summary>Epochs between decays.</summary>
    public int StepEpochs { get; set; } = 10;
    /// <summary>Decay factor.</summary>
    public double Gamma { get; set; } = 0.1;
    internal override double Rate(double baseRate, int epoch, int epochs) => baseRate * Math.Pow(Gamma, epoch / Math.Max(1, StepEpochs));
}

/// <summary>Linear warm-up then cosine decay.</summary>
public sealed class CosineSchedule : LearningRateSchedule
{
    /// <summary>The final learning rate.</summary>
    public double Minimum { get; set; }
    /// <summary>Epochs of linear warm-up from base/warmup to the base rate.</summary>
    public int WarmupEpochs { get; set; }
    internal override double Rate(double baseRate, int epoch, int epochs)
    {
        if (epoch < WarmupEpochs) return baseRate * (epoch + 1) / (WarmupEpochs + 1);
        double span = Math.Max(1, epochs - WarmupEpochs);
        return Minimum + (baseRate - Minimum) * 0.5 * (1 + Math.Cos(Math.PI * (epoch - WarmupEpochs) / span));
    }
}

/// <summary>Reduce the rate when the validation loss plateaus.</summary>
public sealed class ReduceOnPlateauSchedule : LearningRateSchedule
{
    private double _best = double.PositiveInfinity;
    private int _bad;
    private double _scale = 1;

    /// <summary>Multiplier applied on a plateau.</summary>
    public double Factor { get; set; } = 0.5;
    /// <summary>Epochs without improvement that make a plateau.</summary>
    public int Patience { get; set; } = 2;

    internal override double Rate(double baseRate, int epoch, int epochs) => baseRate * _scale;

    internal override void Reset() { _best = double.PositiveInfinity; _bad = 0; _scale = 1; }

    internal override void Observe(double? validationLoss)
    {
        if (validationLoss is not double v) return;
        if (v < _best - 1e-12) { _best = v; _bad = 0; }
        else if (++_bad > Patience) { _scale *= Factor; _bad = 0; }
    }
}
