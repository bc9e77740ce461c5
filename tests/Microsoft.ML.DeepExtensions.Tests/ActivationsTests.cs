using TorchSharp;

namespace Microsoft.ML.DeepExtensions.Tests;

/// <summary>The seed lecture's worked numbers, for the scalar functions and the tensor modules alike.</summary>
public class ActivationsTests
{
    [Fact]
    public void LogisticOfWeightedSumMatchesTheSeed()
    {
        double[] x = [1, 1.4, 2.5], w = [0.4, 0.3, 0.5];
        double z = x.Zip(w, (a, b) => a * b).Sum();           // 0.4 + 0.42 + 1.25 = 2.07
        Assert.Equal(2.07, z, 10);
        Assert.Equal(0.888, Activations.Apply(Activation.Logistic, z), 3);
        using var t = torch.tensor(new[] { (float)z });
        using var m = Activations.Module(Activation.Logistic);
        using var y = m.call(t);
        Assert.Equal(0.888, y.item<float>(), 3);
    }

    [Fact]
    public void SoftmaxMatchesTheSeed()
    {
        double[] z = [1, 2, 3, 4, 1, 2, 3];
        double[] expected = [0.024, 0.064, 0.175, 0.475, 0.024, 0.064, 0.175];
        var p = Activations.Softmax(z);
        for (int i = 0; i < z.Length; i++) Assert.Equal(expected[i], p[i], 3);
        Assert.Equal(1.0, p.Sum(), 12);
        using var t = torch.tensor(z.Select(v => (float)v).ToArray());
        using var s = Activations.Apply(Activation.Softmax, t);
        var ps = s.data<float>().ToArray();
        for (int i = 0; i < z.Length; i++) Assert.Equal(expected[i], ps[i], 3);
    }

    [Theory]
    [InlineData(-3.0)]
    [InlineData(-0.5)]
    [InlineData(0.0)]
    [InlineData(0.7)]
    [InlineData(2.5)]
    public void TanhIsARescaledLogistic(double z) =>
        Assert.Equal(Math.Tanh(z), 2 * Activations.Logistic(2 * z) - 1, 12);

    [Theory]
    [InlineData(-4.0)]
    [InlineData(-1.0)]
    [InlineData(0.0)]
    [InlineData(0.3)]
    [InlineData(5.0)]
    public void SoftplusDerivativeIsLogistic(double z)
    {
        Assert.Equal(Activations.Logistic(z), Activations.Derivative(Activation.Softplus, z), 12);
        // and by finite differences on the function itself
        double h = 1e-6;
        double numeric = (Activations.Apply(Activation.Softplus, z + h) - Activations.Apply(Activation.Softplus, z - h)) / (2 * h);
        Assert.Equal(Activations.Logistic(z), numeric, 6);
        // and by TorchSharp's autograd through the module
        using var t = torch.tensor(new[] { (float)z }, requires_grad: true);
        using var m = Activations.Module(Activation.Softplus);
        using var y = m.call(t);
        y.backward();
        Assert.Equal(Activations.Logistic(z), t.grad!.item<float>(), 5);
    }

    [Fact]
    public void TheTableHasTheSeedsShapes()
    {
        Assert.Equal(0.0, Activations.Apply(Activation.UnitStep, -2));
        Assert.Equal(0.5, Activations.Apply(Activation.UnitStep, 0));
        Assert.Equal(1.0, Activations.Apply(Activation.UnitStep, 3));
        Assert.Equal(-1.0, Activations.Apply(Activation.Sign, -0.1));
        Assert.Equal(1.0, Activations.Apply(Activation.Sign, 0.1));
        Assert.Equal(0.0, Activations.Apply(Activation.PiecewiseLinear, -1));
        Assert.Equal(0.7, Activations.Apply(Activation.PiecewiseLinear, 0.2), 12);
        Assert.Equal(1.0, Activations.Apply(Activation.PiecewiseLinear, 2));
        Assert.Equal(-4.0, Activations.Apply(Activation.Linear, -4));
        Assert.Equal(0.0, Activations.Apply(Activation.Relu, -4));
        Assert.Equal(-0.04, Activations.Apply(Activation.LeakyRelu, -4), 12);
        Assert.Equal(0.8413 * 1.0, Activations.Apply(Activation.Gelu, 1.0), 3);
        Assert.Throws<ArgumentException>(() => Activations.Apply(Activation.Softmax, 1.0));
    }

    [Theory]
    [InlineData(Activation.Linear)]
    [InlineData(Activation.UnitStep)]
    [InlineData(Activation.Sign)]
    [InlineData(Activation.PiecewiseLinear)]
    [InlineData(Activation.Logistic)]
    [InlineData(Activation.Tanh)]
    [InlineData(Activation.Relu)]
    [InlineData(Activation.LeakyRelu)]
    [InlineData(Activation.Softplus)]
    [InlineData(Activation.Gelu)]
    public void ModulesAgreeWithScalarFunctions(Activation a)
    {
        float[] zs = [-2.5f, -0.5f, -0.1f, 0f, 0.2f, 0.5f, 1.7f];
        using var m = Activations.Module(a);
        using var t = torch.tensor(zs);
        using var y = m.call(t);
        var ys = y.data<float>().ToArray();
        for (int i = 0; i < zs.Length; i++) Assert.Equal(Activations.Apply(a, zs[i]), ys[i], 4);
    }
}
