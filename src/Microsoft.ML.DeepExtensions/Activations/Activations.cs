using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.DeepExtensions;

/// <summary>The activation functions of the seed lecture's table (plus leaky ReLU and GELU).</summary>
public enum Activation
{
    /// <summary>f(z) = z.</summary>
    Linear,
    /// <summary>Heaviside unit step: 0 for z &lt; 0, 0.5 at 0, 1 for z &gt; 0 (no useful gradient).</summary>
    UnitStep,
    /// <summary>sign(z): −1, 0, 1 (no useful gradient).</summary>
    Sign,
    /// <summary>Piecewise linear: 0 for z ≤ −½, z + ½ in between, 1 for z ≥ ½.</summary>
    PiecewiseLinear,
    /// <summary>Logistic sigmoid 1 / (1 + e^−z).</summary>
    Logistic,
    /// <summary>Hyperbolic tangent; tanh(z) = 2·logistic(2z) − 1.</summary>
    Tanh,
    /// <summary>max(0, z).</summary>
    Relu,
    /// <summary>z for z &gt; 0, 0.01·z otherwise.</summary>
    LeakyRelu,
    /// <summary>ln(1 + e^z); its derivative is the logistic function.</summary>
    Softplus,
    /// <summary>Gaussian error linear unit z·Φ(z).</summary>
    Gelu,
    /// <summary>e^z_i / Σ e^z_j over the last dimension (a vector function).</summary>
    Softmax,
}

/// <summary>
/// The seed's activation table, as scalar functions (for teaching and checks), their derivatives, and TorchSharp modules
/// (for networks). Scalar and tensor versions agree.
/// </summary>
public static class Activations
{
    /// <summary>Applies a scalar activation (not <see cref="Activation.Softmax"/>, which needs a vector).</summary>
    public static double Apply(Activation activation, double z) => activation switch
    {
        Activation.Linear => z,
        Activation.UnitStep => z > 0 ? 1 : z < 0 ? 0 : 0.5,
        Activation.Sign => Math.Sign(z),
        Activation.PiecewiseLinear => z <= -0.5 ? 0 : z >= 0.5 ? 1 : z + 0.5,
        Activation.Logistic => Logistic(z),
        Activation.Tanh => Math.Tanh(z),
        Activation.Relu => Math.Max(0, z),
        Activation.LeakyRelu => z > 0 ? z : 0.01 * z,
        Activation.Softplus => z > 30 ? z : Math.Log(1 + Math.Exp(z)),
        Activation.Gelu => 0.5 * z * (1 + Erf(z / Math.Sqrt(2))),
        _ => throw new ArgumentException("Softmax is a vector function: use Activations.Softmax(double[]).", nameof(activation)),
    };

    /// <summary>The derivative df/dz of a scalar activation (0 where the function is flat or undefined).</summary>
    public static double Derivative(Activation activation, double z) => activation switch
    {
        Activation.Linear => 1,
        Activation.UnitStep or Activation.Sign => 0,
        Activation.PiecewiseLinear => z > -0.5 && z < 0.5 ? 1 : 0,
        Activation.Logistic => Logistic(z) * (1 - Logistic(z)),
        Activation.Tanh => 1 - Math.Tanh(z) * Math.Tanh(z),
        Activation.Relu => z > 0 ? 1 : 0,
        Activation.LeakyRelu => z > 0 ? 1 : 0.01,
        Activation.Softplus => Logistic(z),
        Activation.Gelu => 0.5 * (1 + Erf(z / Math.Sqrt(2))) + z * Math.Exp(-z * z / 2) / Math.Sqrt(2 * Math.PI),
        _ => throw new ArgumentException("Softmax is a vector function.", nameof(activation)),
    };

    /// <summary>The logistic function 1 / (1 + e^−z).</summary>
    public static double Logistic(double z) => z >= 0 ? 1 / (1 + Math.Exp(-z)) : Math.Exp(z) / (1 + Math.Exp(z));

    /// <summary>Softmax of a vector (numerically stable).</summary>
    public static double[] Softmax(IReadOnlyList<double> z)
    {
        double max = z.Max();
        var e = z.Select(v => Math.Exp(v - max)).ToArray();
        double sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }

    /// <summary>Applies an activation to a tensor (softmax over the last dimension).</summary>
    public static Tensor Apply(Activation activation, Tensor z) => activation switch
    {
        Activation.Linear => z.alias(),
        Activation.UnitStep => z.heaviside(torch.tensor(0.5f, z.dtype, z.device)),
        Activation.Sign => z.sign(),
        Activation.PiecewiseLinear => z.add(Half).clamp(Zero, One),
        Activation.Logistic => z.sigmoid(),
        Activation.Tanh => z.tanh(),
        Activation.Relu => z.relu(),
        Activation.LeakyRelu => nn.functional.leaky_relu(z, 0.01),
        Activation.Softplus => nn.functional.softplus(z),
        Activation.Gelu => nn.functional.gelu(z),
        _ => z.softmax(-1),
    };

    // Held for good: a Scalar made on the fly can be finalized while libtorch still reads it (TorchSharp 0.107).
    private static readonly Scalar Half = 0.5.ToScalar(), Zero = 0.ToScalar(), One = 1.ToScalar();

    /// <summary>The activation as a TorchSharp module, for use in networks.</summary>
    public static nn.Module<Tensor, Tensor> Module(Activation activation) => activation switch
    {
        Activation.Linear => nn.Identity(),
        Activation.Logistic => nn.Sigmoid(),
        Activation.Tanh => nn.Tanh(),
        Activation.Relu => nn.ReLU(),
        Activation.LeakyRelu => nn.LeakyReLU(0.01),
        Activation.Softplus => nn.Softplus(),
        Activation.Gelu => nn.GELU(),
        Activation.Softmax => nn.Softmax(-1),
        _ => new ActivationModule(activation),
    };

    private sealed class ActivationModule(Activation activation) : nn.Module<Tensor, Tensor>(activation.ToString()), Onnx.IOnnxExportable
    {
        public override Tensor forward(Tensor input) => Apply(activation, input);

        public string ExportOnnx(Onnx.OnnxGraph graph, string input, string path) => graph.Activation(activation, input, path);
    }

    // Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7), enough for the scalar GELU.
    private static double Erf(double x)
    {
        double t = 1 / (1 + 0.3275911 * Math.Abs(x));
        double y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.Exp(-x * x);
        return x >= 0 ? y : -y;
    }
}
