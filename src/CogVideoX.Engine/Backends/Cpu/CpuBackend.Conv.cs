namespace CogVideoX.Engine;

public sealed unsafe partial class CpuBackend
{
    /// <summary>
    /// Convolution as one GEMM per batch item: y[n] [Cout, T'·H'·W'] = weight [Cout, Cin·kT·kH·kW] · im2col(x[n]).
    /// The im2col matrix is never built: the GEMM packs its panels straight from the input (bounded by the GEMM's
    /// block buffers), and the result lands in y's own layout, so there is no transpose afterwards.
    /// </summary>
    public void Conv3d(Tensor x, Tensor weight, Tensor? bias, Conv3dParams p, Tensor y)
    {
        using var xc = F32(x);
        using var wc = F32(weight);
        using var bc = bias is null ? null : F32(bias);
        int nb = xc.Dim(0), cin = xc.Dim(1), ti = xc.Dim(2), hi = xc.Dim(3), wi = xc.Dim(4);
        int cout = wc.Dim(0), kt = wc.Dim(2), kh = wc.Dim(3), kw = wc.Dim(4);
        int to = y.Dim(2), ho = y.Dim(3), wo = y.Dim(4);
        int kdim = cin * kt * kh * kw;
        int pixels = checked(to * ho * wo);
        long inputPerItem = (long)cin * ti * hi * wi;
        float* xp = Ptr<float>(xc);
        var weights = new StridedMatrix(Ptr<float>(wc), kdim, 1);
        var epilogue = new GemmEpilogue(null, bc is null ? null : Ptr<float>(bc), Activation.None);
        // A 1×1×1 convolution without stride or padding is a plain product with x[n] viewed as [Cin, T·H·W].
        bool pointwise = kt == 1 && kh == 1 && kw == 1 && p == new Conv3dParams(1, 1, 1, 0, 0, 0);
        WriteF32(y, ys =>
        {
            fixed (float* yp = ys)
            {
                for (int n = 0; n < nb; n++)
                {
                    float* xn = xp + n * inputPerItem;
                    float* yn = yp + (long)n * cout * pixels;
                    if (pointwise)
                        Gemm.Multiply(weights, new StridedMatrix(xn, pixels, 1), yn, pixels, cout, pixels, kdim, epilogue);
                    else
                        Gemm.Multiply(weights, new Im2ColOperand(xn, ti, hi, wi, kt, kh, kw, p, ho, wo), yn, pixels,
                            cout, pixels, kdim, epilogue);
                }
            }
        });
    }
}
