using Microsoft.ML.DeepExtensions.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions.Models;

/// <summary>
/// The GAN's step (Keras' "override train_step"): per batch a discriminator step — real rows up, generated rows down —
/// and every <c>DiscriminatorSteps</c> batches a generator step that tries to fool it; two optimizers, two losses
/// (reported as <see cref="EpochRecord.Losses"/> "generator" and "discriminator"). Everything around it is the shared loop.
/// </summary>
internal sealed class AdversarialStepper : IStepper
{
    private readonly GanNetwork _network;
    private readonly optim.Optimizer _generator;
    private readonly optim.Optimizer _discriminator;
    private readonly LossAccumulator _generatorLoss;
    private readonly LossAccumulator _discriminatorLoss;
    private readonly bool _wgan;
    private readonly float _realTarget;
    private readonly double _penaltyWeight;
    private readonly int _discriminatorSteps;
    private readonly double? _clip;
    private readonly Device _device;
    private long _batch;

    public AdversarialStepper(GanNetwork network, GanTrainer.Options options, Device device)
    {
        _network = network;
        _device = device;
        _generator = Optimizers.Create(network.Generator.parameters(), options, (options.Beta1, options.Beta2));
        _discriminator = Optimizers.Create(network.Discriminator.parameters(), options, (options.Beta1, options.Beta2));
        _generatorLoss = new LossAccumulator(device);
        _discriminatorLoss = new LossAccumulator(device);
        _wgan = options.Loss == GanLoss.WassersteinGradientPenalty;
        _realTarget = (float)(1 - options.LabelSmoothing);
        _penaltyWeight = options.GradientPenaltyWeight;
        _discriminatorSteps = options.DiscriminatorSteps;
        _clip = options.GradientClipNorm;
    }

    public void BeginEpoch(int epoch, double learningRate)
    {
        Optimizers.SetLearningRate(_generator, learningRate);
        Optimizers.SetLearningRate(_discriminator, learningRate);
        _batch = 0;
    }

    public void Step(Tensor features, Tensor y)
    {
        long n = features.shape[0];
        if (n < 2) return; // batch norm cannot normalise a single row
        var real = _network.Scale(features);
        var oneHot = _network.OneHot(y);
        int latent = _network.Spec.LatentSize;

        // Discriminator: real rows up, generated rows down.
        _discriminator.zero_grad();
        Tensor fake;
        using (torch.no_grad()) fake = _network.Generate(torch.randn(n, latent, device: _device), oneHot);
        var dReal = _network.Discriminate(real, oneHot);
        var dFake = _network.Discriminate(fake, oneHot);
        var dLoss = _wgan
            ? dFake.mean() - dReal.mean() + _penaltyWeight * GradientPenalty(real, fake, oneHot)
            : nn.functional.binary_cross_entropy_with_logits(dReal, torch.full_like(dReal, _realTarget))
              + nn.functional.binary_cross_entropy_with_logits(dFake, torch.zeros_like(dFake));
        dLoss.backward();
        if (_clip is double c) Optimizers.ClipGradients(_network.Discriminator.parameters(), c);
        _discriminator.step();
        _discriminatorLoss.Add(dLoss, n);

        // Generator: fool the discriminator (non-saturating loss, or raise the critic's score).
        if (++_batch % _discriminatorSteps != 0) return;
        _generator.zero_grad();
        var score = _network.Discriminate(_network.Generate(torch.randn(n, latent, device: _device), oneHot), oneHot);
        var gLoss = _wgan ? -score.mean() : nn.functional.binary_cross_entropy_with_logits(score, torch.ones_like(score));
        gLoss.backward();
        if (_clip is double g) Optimizers.ClipGradients(_network.Generator.parameters(), g);
        _generator.step();
        _generatorLoss.Add(gLoss, n);
    }

    /// <summary>WGAN-GP: mean of (‖∇D(x̂)‖ − 1)² on random points x̂ between real and generated rows.</summary>
    private Tensor GradientPenalty(Tensor real, Tensor fake, Tensor? oneHot)
    {
        var eps = torch.rand(real.shape[0], 1, device: real.device);
        var mixed = (eps * real + (1 - eps) * fake).detach().requires_grad_(true);
        var score = _network.Discriminate(mixed, oneHot);
        var grad = torch.autograd.grad([score.sum()], [mixed], retain_graph: true, create_graph: true)[0];
        return (grad.norm(1) - 1).square().mean();
    }

    public EpochLoss EndEpoch()
    {
        double d = _discriminatorLoss.TakeMean(), g = _generatorLoss.TakeMean();
        return new EpochLoss(d + g, new Dictionary<string, double> { ["generator"] = g, ["discriminator"] = d });
    }

    public void Save(BinaryWriter writer)
    {
        Optimizers.Save(_generator, writer);
        Optimizers.Save(_discriminator, writer);
    }

    public void Load(BinaryReader reader)
    {
        Optimizers.Load(_generator, reader);
        Optimizers.Load(_discriminator, reader);
    }

    public void Dispose()
    {
        Optimizers.ReleaseGradients(_network);
        _generator.Dispose();
        _discriminator.Dispose();
        _generatorLoss.Dispose();
        _discriminatorLoss.Dispose();
    }
}
