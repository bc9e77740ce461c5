using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Training;

/// <summary>What an epoch of steps amounted to.</summary>
/// <param name="TrainLoss">Mean training loss over the epoch's rows.</param>
/// <param name="Parts">Named parts of the loss (a GAN's generator and discriminator losses); null for one objective.</param>
/// <param name="Converged">True when training has converged and should stop (the perceptron's mistake-free epoch).</param>
internal sealed record EpochLoss(double TrainLoss, IReadOnlyDictionary<string, double>? Parts = null, bool Converged = false);

/// <summary>
/// How a batch changes the weights (Keras' <c>train_step</c>). Gradient-trained families share <see cref="GradientStepper"/>;
/// a family with its own learning rule (Rosenblatt's perceptron, the GAN's adversarial steps) supplies another. The loop
/// around it — epochs, seeds, callbacks, validation, checkpoints, cancellation — is <see cref="TrainingLoop"/>.
/// </summary>
internal interface IStepper : IDisposable
{
    /// <summary>Called before each epoch (1-based <paramref name="epoch"/>) with that epoch's learning rate.</summary>
    void BeginEpoch(int epoch, double learningRate);

    /// <summary>Trains on one batch. Its loss is accumulated on the device and read once, in <see cref="EndEpoch"/> (no host sync per batch).</summary>
    void Step(Tensor x, Tensor y);

    /// <summary>Called after each epoch: the epoch's losses.</summary>
    EpochLoss EndEpoch();

    /// <summary>Optimizer state for checkpoints.</summary>
    void Save(BinaryWriter writer);

    /// <summary>Restores <see cref="Save"/>'s state.</summary>
    void Load(BinaryReader reader);
}

/// <summary>
/// A row-weighted loss sum kept on the device: each batch adds its mean loss × rows without leaving the device; the
/// epoch's mean is read once. It lives outside the per-batch dispose scopes (in-place adds keep the same tensor).
/// </summary>
internal sealed class LossAccumulator(Device device) : IDisposable
{
    private readonly Tensor _sum = zeros(1, ScalarType.Float64, device: device);
    private long _rows;

    /// <summary>Adds a batch's mean loss <paramref name="loss"/> over <paramref name="rows"/> rows.</summary>
    public void Add(Tensor loss, long rows)
    {
        using var _ = no_grad();
        using var weight = ((double)rows).ToScalar();   // the implicit long → Scalar would leave a native handle to the finalizer every batch
        using var value = loss.detach().to_type(ScalarType.Float64);
        _sum.add_(value, weight);
        _rows += rows;
    }

    /// <summary>The mean since the last call (one host read), and a fresh start.</summary>
    public double TakeMean()
    {
        double mean = _rows == 0 ? 0 : _sum.item<double>() / _rows;
        _sum.zero_();
        _rows = 0;
        return mean;
    }

    public void Dispose() => _sum.Dispose();
}

/// <summary>The optimizer <see cref="DeepTrainerOptions.Optimizer"/> names, and what every stepper does with one.</summary>
internal static class Optimizers
{
    public static optim.Optimizer Create(IEnumerable<TorchSharp.Modules.Parameter> parameters, DeepTrainerOptions options, (double Beta1, double Beta2)? betas = null)
    {
        double lr = options.LearningRate, wd = options.WeightDecay;
        var (b1, b2) = betas ?? (0.9, 0.999);
        return options.Optimizer switch
        {
            DeepOptimizer.Sgd => optim.SGD(parameters, lr, momentum: options.Momentum, weight_decay: wd),
            DeepOptimizer.AdamW => optim.AdamW(parameters, lr, b1, b2, weight_decay: wd),
            DeepOptimizer.RmsProp => optim.RMSProp(parameters, lr, momentum: options.Momentum, weight_decay: wd),
            _ => optim.Adam(parameters, lr, b1, b2, weight_decay: wd),
        };
    }

    public static void SetLearningRate(optim.Optimizer optimizer, double learningRate)
    {
        foreach (var g in optimizer.ParamGroups) g.LearningRate = learningRate;
    }

    public static void Save(optim.Optimizer optimizer, BinaryWriter writer) => Helper(optimizer).save_state_dict(writer);

    public static void Load(optim.Optimizer optimizer, BinaryReader reader) => Helper(optimizer).load_state_dict(reader);

    private static TorchSharp.Modules.OptimizerHelper Helper(optim.Optimizer optimizer) => optimizer as TorchSharp.Modules.OptimizerHelper
        ?? throw new NotSupportedException($"{optimizer.GetType().Name} cannot save its state for checkpoints.");

    /// <summary>
    /// Scales the gradients so that their joint L2 norm is at most <paramref name="maxNorm"/> (PyTorch's
    /// <c>clip_grad_norm_</c>), entirely on the device: TorchSharp's own returns the norm as a number, which would make
    /// every batch wait for the GPU.
    /// </summary>
    public static void ClipGradients(IEnumerable<TorchSharp.Modules.Parameter> parameters, double maxNorm)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToArray();
        if (grads.Length == 0) return;
        using var max = maxNorm.ToScalar();   // scalars held for the calls: TorchSharp's temporaries can be finalized mid-call
        using var epsilon = 1e-6.ToScalar();
        using var one = 1.0.ToScalar();
        var total = stack(grads.Select(g => g.norm()).ToArray()).norm();
        var scale = total.add(epsilon).reciprocal().mul(max).clamp_max(one);
        foreach (var g in grads) g.mul_(scale);
    }

    /// <summary>Drops the gradients (tensors of their own): a fitted network does not need them.</summary>
    public static void ReleaseGradients(nn.Module module)
    {
        foreach (var p in module.parameters())
        {
            using var g = p.grad;
            if (g is not null) p.grad = null;
        }
    }
}

/// <summary>
/// How a network with a pretrained part is fine-tuned (fastai's <c>freeze</c>/<c>unfreeze</c> and discriminative learning
/// rates, Keras' <c>trainable = False</c>): parameters <paramref name="IsBackbone"/> names are frozen for the first
/// <paramref name="FreezeEpochs"/> epochs, then learn at <paramref name="BackboneRateFactor"/> × the learning rate;
/// parameters <paramref name="IsFixed"/> names (the lower layers when only the top ones are fine-tuned) never learn.
/// </summary>
internal sealed record FineTuning(Func<string, bool> IsBackbone, int FreezeEpochs, double BackboneRateFactor, Func<string, bool>? IsFixed = null);

/// <summary>
/// Forward, loss, backward, optional gradient clipping, optimizer step. With <see cref="FineTuning"/> the backbone's
/// parameters have an optimizer of their own (its own rate, no steps while frozen).
/// </summary>
internal sealed class GradientStepper : IStepper
{
    private readonly DeepNetwork _network;
    private readonly LossFunction _loss;
    private readonly optim.Optimizer _optimizer;
    private readonly optim.Optimizer? _backboneOptimizer;
    private readonly TorchSharp.Modules.Parameter[] _backbone = [];
    private readonly TorchSharp.Modules.Parameter[] _fixed = [];
    private readonly FineTuning? _fineTuning;
    private readonly double? _clip;
    private readonly bool _regression;
    private readonly LossAccumulator _sum;
    private bool _frozen;

    public GradientStepper(DeepNetwork network, LossFunction loss, DeepTrainerOptions options, bool regression, Device device, FineTuning? fineTuning = null)
    {
        _network = network;
        _loss = loss;
        _clip = options.GradientClipNorm;
        _regression = regression;
        _fineTuning = fineTuning;
        if (fineTuning is null)
            _optimizer = Optimizers.Create(network.parameters(), options);
        else
        {
            var fixedOnes = network.Body.named_parameters().Where(p => fineTuning.IsFixed?.Invoke(p.name) == true).Select(p => p.parameter).ToArray();
            foreach (var p in fixedOnes) p.requires_grad = false;
            _fixed = fixedOnes;
            var parameters = network.Body.named_parameters().Where(p => fineTuning.IsFixed?.Invoke(p.name) != true).ToArray();
            _backbone = parameters.Where(p => fineTuning.IsBackbone(p.name)).Select(p => p.parameter).ToArray();
            _optimizer = Optimizers.Create(parameters.Where(p => !fineTuning.IsBackbone(p.name)).Select(p => p.parameter), options);
            _backboneOptimizer = Optimizers.Create(_backbone, options);
        }
        _sum = new LossAccumulator(device);
    }

    public void BeginEpoch(int epoch, double learningRate)
    {
        Optimizers.SetLearningRate(_optimizer, learningRate);
        if (_fineTuning is null) return;
        Optimizers.SetLearningRate(_backboneOptimizer!, learningRate * _fineTuning.BackboneRateFactor);
        _frozen = epoch <= _fineTuning.FreezeEpochs;
        foreach (var p in _backbone) p.requires_grad = !_frozen;   // frozen: no gradients through the backbone at all (fast)
    }

    public void Step(Tensor x, Tensor y)
    {
        _optimizer.zero_grad();
        _backboneOptimizer?.zero_grad();
        var target = _regression ? _network.ScaleTarget(y) : y;
        var output = _network.Forward(x, target);
        var loss = _loss.Compute(output, target);
        loss.backward();
        if (_clip is double c) Optimizers.ClipGradients(_network.parameters(), c);
        _optimizer.step();
        if (!_frozen) _backboneOptimizer?.step();
        _sum.Add(loss, x.shape[0]);
    }

    public EpochLoss EndEpoch() => new(_sum.TakeMean());

    public void Save(BinaryWriter writer)
    {
        Optimizers.Save(_optimizer, writer);
        if (_backboneOptimizer is not null) Optimizers.Save(_backboneOptimizer, writer);
    }

    public void Load(BinaryReader reader)
    {
        Optimizers.Load(_optimizer, reader);
        if (_backboneOptimizer is not null) Optimizers.Load(_backboneOptimizer, reader);
    }

    public void Dispose()
    {
        foreach (var p in _backbone.Concat(_fixed)) p.requires_grad = true;
        Optimizers.ReleaseGradients(_network);
        _optimizer.Dispose();
        _backboneOptimizer?.Dispose();
        _sum.Dispose();
    }
}
