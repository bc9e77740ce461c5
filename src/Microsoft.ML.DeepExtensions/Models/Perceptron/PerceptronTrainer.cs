using Microsoft.ML.DeepExtensions.Models;
using Microsoft.ML.DeepExtensions.Network;
using Microsoft.ML.DeepExtensions.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>
/// Rosenblatt's perceptron for binary classification: output = step(w·x + b); the weights change only on a mistake,
/// w ← w + η(y − ŷ)x (and b ← b + η(y − ŷ)), example by example, for epochs until an epoch has no mistakes or the limit.
/// The averaged variant scores with the average of the weights over all steps. <c>Score</c> = w·x + b; there is no
/// <c>Probability</c> column (evaluate with <c>BinaryClassification.EvaluateNonCalibrated</c>, like ML.NET's AveragedPerceptron).
/// </summary>
public sealed class PerceptronTrainer : DeepTrainerBase<PerceptronTrainer.Options>
{
    /// <summary>Options for <see cref="PerceptronTrainer"/>.</summary>
    public sealed class Options : DeepTrainerOptions
    {
        /// <summary>Creates options with the perceptron's defaults (η = 1, 20 epochs, averaged, no validation split).</summary>
        public Options()
        {
            LearningRate = 1.0;
            Epochs = 20;
            ValidationFraction = 0;
            Task = DeepTask.BinaryClassification;
        }

        /// <summary>
        /// Score with the average of the weight vectors over all steps (Freund &amp; Schapire's averaged perceptron; the
        /// update rule is unchanged). On data that is not linearly separable the last weight vector of the plain rule
        /// keeps jumping between epochs; the average is stable. Default true; false gives the classic perceptron.
        /// </summary>
        public bool Averaged { get; set; } = true;
    }

    /// <summary>Creates the trainer (prefer <c>mlContext.Deep().Perceptron(options)</c>).</summary>
    public PerceptronTrainer(MLContext context, Options options) : base(context, options, nameof(PerceptronTrainer)) { }

    /// <inheritdoc />
    protected override bool Supports(DeepTask task) => task == DeepTask.BinaryClassification;

    /// <inheritdoc />
    protected override bool HasProbability => false;

    /// <inheritdoc />
    protected override NetworkSpec CreateSpec(SpecRequest request) =>
        new PerceptronSpec { InputSize = request.Input.Size, OutputSize = request.OutputSize };

    internal override IStepper CreateStepper(DeepNetwork network, LossFunction loss, DeepTask task, Device device) =>
        new RosenblattStepper(network, TrainerOptions.Averaged);

    /// <summary>The mistake-driven rule, example by example, on the standardised batch; weights copied into the module after each epoch.</summary>
    private sealed class RosenblattStepper : IStepper
    {
        private readonly DeepNetwork _network;
        private readonly nn.Module<Tensor, Tensor> _unit;
        private readonly bool _averaged;
        private readonly int _d;
        private float[] _w;
        private float _b;
        private double[] _u;   // Σ c·Δw, for the averaged weights w − u/c
        private double _ub;
        private long _c = 1;
        private float _eta = 1;
        private long _mistakes;
        private long _rows;

        public RosenblattStepper(DeepNetwork network, bool averaged)
        {
            _network = network;
            _unit = network.Body;
            _averaged = averaged;
            var lin = (TorchSharp.Modules.Linear)_unit;
            _d = (int)lin.weight!.shape[1];
            _w = new float[_d];          // Rosenblatt starts from zero weights
            _u = new double[_d];
            Publish();
        }

        public void BeginEpoch(int epoch, double learningRate)
        {
            _eta = (float)learningRate;
            _mistakes = 0;
            _rows = 0;
        }

        public void Step(Tensor x, Tensor y)
        {
            using var _ = no_grad();
            int n = (int)x.shape[0];
            var xs = _network.Standardize(x).cpu().data<float>().ToArray();
            var ys = y.cpu().data<float>().ToArray();
            _rows += n;
            for (int i = 0; i < n; i++, _c++)
            {
                var row = xs.AsSpan(i * _d, _d);
                float z = _b;
                for (int j = 0; j < _d; j++) z += _w[j] * row[j];
                float predicted = z > 0 ? 1 : 0;
                float delta = _eta * (ys[i] - predicted);
                if (delta == 0) continue;
                _mistakes++;
                for (int j = 0; j < _d; j++)
                {
                    _w[j] += delta * row[j];
                    _u[j] += (double)_c * delta * row[j];
                }
                _b += delta;
                _ub += (double)_c * delta;
            }
        }

        /// <summary>The epoch's "loss" is its fraction of mistakes; none means converged.</summary>
        public EpochLoss EndEpoch()
        {
            Publish();
            return new EpochLoss(_mistakes / (double)Math.Max(1, _rows), Converged: _mistakes == 0);
        }

        private void Publish()
        {
            var lin = (TorchSharp.Modules.Linear)_unit;
            float[] w = _averaged ? _w.Select((v, j) => (float)(v - _u[j] / _c)).ToArray() : _w;
            float b = _averaged ? (float)(_b - _ub / _c) : _b;
            using var _ = no_grad();
            using var wt = tensor(w, [1, _d]);
            lin.weight!.copy_(wt);
            lin.bias!.fill_(b);
        }

        public void Save(BinaryWriter writer)
        {
            writer.Write(_c); writer.Write(_b); writer.Write(_ub);
            foreach (var v in _w) writer.Write(v);
            foreach (var v in _u) writer.Write(v);
        }

        public void Load(BinaryReader reader)
        {
            _c = reader.ReadInt64(); _b = reader.ReadSingle(); _ub = reader.ReadDouble();
            for (int j = 0; j < _d; j++) _w[j] = reader.ReadSingle();
            for (int j = 0; j < _d; j++) _u[j] = reader.ReadDouble();
            Publish();
        }

        public void Dispose() { }
    }
}
