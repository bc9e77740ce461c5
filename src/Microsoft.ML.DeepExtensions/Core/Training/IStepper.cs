using Microsoft.ML.DeepExtensions.Network;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Training;

/// <summary>
/// How a batch changes the weights. Gradient-trained families share <see cref="GradientStepper"/>; a family with its own
/// learning rule (Rosenblatt's perceptron) supplies another. The loop around it is shared.
/// </summary>
internal interface IStepper : IDisposable
{
    /// <summary>Called before each epoch with that epoch's learning rate.</summary>
    void BeginEpoch(double learningRate);

    /// <summary>Trains on one batch; returns the batch's summed loss (mean × rows).</summary>
    double Step(Tensor x, Tensor y);

    /// <summary>Called after each epoch; returns true when training has converged and should stop.</summary>
    bool EndEpoch();

    /// <summary>Optimizer state for checkpoints.</summary>
    void Save(BinaryWriter writer);

    /// <summary>Restores <see cref="Save"/>'s state.</summary>
    void Load(BinaryReader reader);
}

/// <summary>Forward, loss, backward, optional gradient clipping, optimizer step.</summary>
internal sealed class GradientStepper : IStepper
{
    private readonly DeepNetwork _network;
    private readonly LossFunction _loss;
    private readonly optim.Optimizer _optimizer;
    private readonly double? _clip;
    private readonly bool _regression;

    public GradientStepper(DeepNetwork network, LossFunction loss, DeepTrainerOptions options, bool regression)
    {
        _network = network;
        _loss = loss;
        _clip = options.GradientClipNorm;
        _regression = regression;
        var p = network.parameters();
        double lr = options.LearningRate, wd = options.WeightDecay;
        _optimizer = options.Optimizer switch
        {
            DeepOptimizer.Sgd => optim.SGD(p, lr, momentum: options.Momentum, weight_decay: wd),
            DeepOptimizer.AdamW => optim.AdamW(p, lr, weight_decay: wd),
            DeepOptimizer.RmsProp => optim.RMSProp(p, lr, momentum: options.Momentum, weight_decay: wd),
            _ => optim.Adam(p, lr, weight_decay: wd),
        };
    }

    public void BeginEpoch(double learningRate)
    {
        foreach (var g in _optimizer.ParamGroups) g.LearningRate = learningRate;
    }

    public double Step(Tensor x, Tensor y)
    {
        _optimizer.zero_grad();
        var output = _network.forward(x);
        var loss = _loss.Compute(output, _regression ? _network.ScaleTarget(y) : y);
        loss.backward();
        if (_clip is double c) nn.utils.clip_grad_norm_(_network.parameters(), c);
        _optimizer.step();
        return loss.item<float>() * x.shape[0];
    }

    public bool EndEpoch() => false;

    public void Save(BinaryWriter writer) => Helper.save_state_dict(writer);

    public void Load(BinaryReader reader) => Helper.load_state_dict(reader);

    private TorchSharp.Modules.OptimizerHelper Helper => _optimizer as TorchSharp.Modules.OptimizerHelper
        ?? throw new NotSupportedException($"{_optimizer.GetType().Name} cannot save its state for checkpoints.");

    public void Dispose()
    {
        // Gradients live on as tensors of their own; a fitted network does not need them.
        foreach (var p in _network.parameters())
        {
            using var g = p.grad;
            if (g is not null) p.grad = null;
        }
        _optimizer.Dispose();
    }
}
